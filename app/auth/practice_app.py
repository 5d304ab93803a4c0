"""The practice web app (``/app/``) as a SMART App Launch client of every practice.

The app is a public client (authorization code + PKCE S256, no secret: a browser cannot keep
one). Each practice (tenant) has its own registration, because a client belongs to one tenant
and the login page signs users into the client's tenant. The client id is derived from the
tenant's slug (:func:`client_id_for`), so the app computes it from the practice the user names
and needs no lookup endpoint. Registration happens when a tenant is created and, for tenants made
before this existed or when the public URL changed, at start-up; both are idempotent.
"""
from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.auth.crypto import utcnow
from app.auth.models import PUBLIC, T
from app.db import Tenant, dialect_insert, write_connection

CLIENT_NAME = "TheraBridge practice app"
#: The most the app may be granted; each user's role ceiling narrows it at consent (no admin scope).
#: ``online_access`` gives the app a refresh token for the signed-in session, which is how a
#: person granted several practices switches practice without signing in again.
SCOPE = "openid fhirUser profile online_access user/*.cruds"
PREFIX = "app-"
MAX_CLIENT_ID = 64


def client_id_for(tenant: str) -> str:
    """``app-<slug>``; a slug too long for a client id is replaced by the hex SHA-256 of the slug
    (its first 60 characters). The web app computes the same."""
    if len(PREFIX) + len(tenant) <= MAX_CLIENT_ID:
        return PREFIX + tenant
    return PREFIX + hashlib.sha256(tenant.encode()).hexdigest()[:MAX_CLIENT_ID - len(PREFIX)]


def redirect_uri(public_url: str) -> str:
    """Where the login sends the browser back: the app's own page."""
    return public_url.rstrip("/") + "/app/"


def ensure_client(engine: Engine, tenant: str, public_url: str) -> str:
    """Register the app for ``tenant`` (once), or add this public URL's redirect URI to it.

    Earlier redirect URIs are kept: servers of one database may be reached under several URLs."""
    client_id = client_id_for(tenant)
    uri = redirect_uri(public_url)
    table = T["client"]
    with write_connection(engine) as conn, conn.begin():
        conn.execute(dialect_insert(conn, table).values(
            client_id=client_id, tenant_id=tenant, name=CLIENT_NAME, kind=PUBLIC, secret_hash=None,
            jwks=None, jwks_uri=None, redirect_uris=json.dumps([uri]), scope=SCOPE,
            created_at=utcnow()).on_conflict_do_nothing())
        row = conn.execute(sa.select(table.c.tenant_id, table.c.redirect_uris, table.c.scope)
                           .where(table.c.client_id == client_id)).one()
        if row.tenant_id != tenant:
            raise ValueError(f"client id {client_id} belongs to another tenant")
        uris = json.loads(row.redirect_uris or "[]")
        changes: dict[str, str] = {}
        if uri not in uris:
            changes["redirect_uris"] = json.dumps([*uris, uri])
        if row.scope != SCOPE:  # registered by an earlier version of the app
            changes["scope"] = SCOPE
        if changes:
            conn.execute(sa.update(table).where(table.c.client_id == client_id).values(**changes))
    return client_id


def ensure_all(engine: Engine, public_url: str) -> list[str]:
    """The app's client in every tenant (start-up); returns the client ids."""
    tenants = Tenant.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        slugs = [r[0] for r in conn.execute(sa.select(tenants.c.id).order_by(tenants.c.id))]
    return [ensure_client(engine, slug, public_url) for slug in slugs]
