"""Administrative operations behind both the CLI (``app.cli.admin``) and the admin API
(``app.auth.admin_routes``): tenants, clients, users, initial access tokens, EHR launches.

Every function validates its input and raises :class:`AdminError` (a ``ValueError``) with a
message fit to show the operator.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from joserfc import jwk
from joserfc.errors import JoseError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.auth import practice_app
from app.auth.crypto import digest, in_seconds, new_secret, utcnow
from app.auth.models import JWKS, JWKS_URI, PUBLIC, SECRET, T
from app.auth.scopes import ADMIN_SCOPE, ScopeSet, known_roles
from app.auth.users import hash_password
from app.db import Tenant, write_connection
from app.settings import get_settings

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FHIR_USER = re.compile(r"^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$")
KINDS = (PUBLIC, SECRET, JWKS, JWKS_URI)
INITIAL_TOKEN_LIFETIME = 24 * 3600
LAUNCH_LIFETIME = 3600


class AdminError(ValueError):
    """Invalid administrative input."""


def _tenant_exists(engine: Engine, tenant: str) -> None:
    with engine.connect() as conn:
        found = conn.execute(sa.select(Tenant.__table__.c.id).where(Tenant.__table__.c.id == tenant)).first()  # type: ignore[attr-defined]
    if found is None:
        raise AdminError(f"unknown tenant {tenant!r}")


def create_tenant(engine: Engine, slug: str, name: str | None = None, *,
                  public_url: str | None = None) -> dict[str, str]:
    """A new practice, with the web app registered as its SMART client (``public_url``: where the
    server is reached; the settings' by default)."""
    if not _SLUG.match(slug):
        raise AdminError("tenant slug: lowercase letters, digits and '-', at most 63 characters")
    try:
        with write_connection(engine) as conn, conn.begin():
            conn.execute(sa.insert(Tenant.__table__).values(id=slug, name=name or slug, created_at=utcnow()))  # type: ignore[attr-defined]
    except IntegrityError:
        raise AdminError(f"tenant {slug!r} already exists") from None
    practice_app.ensure_client(engine, slug, public_url or get_settings().public_url)
    return {"id": slug, "name": name or slug}


def validate_public_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK Set of public RSA/EC keys, each with ``kid`` and ``kty`` (SAL-ASYM registration)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise AdminError("JWKS must be an object with a non-empty 'keys' array")
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid") or key.get("kty") not in ("RSA", "EC"):
            raise AdminError("every JWK needs 'kid' and kty RSA or EC")
        try:
            imported = jwk.import_key(key)
        except (JoseError, ValueError, TypeError):
            raise AdminError(f"JWK {key.get('kid')!r} is not a valid key") from None
        if imported.is_private:
            raise AdminError("register public keys only; the JWKS contains a private key")
    return {"keys": keys}


def _check_uri(uri: str, what: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise AdminError(f"{what} must be an absolute http(s) URL without fragment: {uri!r}")
    return uri


def register_client(engine: Engine, *, tenant: str, name: str, scope: str, kind: str,
                    jwks: dict[str, Any] | None = None, jwks_uri: str | None = None,
                    redirect_uris: list[str] | None = None, allow_admin: bool = True) -> dict[str, Any]:
    """Register a client; returns ``client_id`` and, for ``secret`` clients, the secret (once)."""
    _tenant_exists(engine, tenant)
    if kind not in KINDS:
        raise AdminError(f"client kind must be one of {', '.join(KINDS)}")
    parsed = ScopeSet.parse(scope)
    if parsed.ignored or not parsed:
        raise AdminError(f"unknown or malformed scopes: {' '.join(parsed.ignored) or '(none given)'}")
    if parsed.has(ADMIN_SCOPE) and not allow_admin:
        raise AdminError("the admin scope cannot be requested here")
    redirects = [_check_uri(u, "redirect URI") for u in (redirect_uris or [])]
    if kind in (PUBLIC, SECRET) and not redirects:
        raise AdminError("public and secret clients need at least one redirect URI")
    if kind == JWKS:
        jwks = validate_public_jwks(jwks)
    elif jwks is not None:
        raise AdminError("a JWKS by value needs kind 'jwks'")
    if kind == JWKS_URI:
        if not jwks_uri:
            raise AdminError("kind 'jwks_uri' needs the JWKS URL")
        _check_uri(jwks_uri, "JWKS URL")
    elif jwks_uri:
        raise AdminError("a JWKS URL needs kind 'jwks_uri'")
    client_id = new_secret(18)
    secret = new_secret(32) if kind == SECRET else None
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.insert(T["client"]).values(
            client_id=client_id, tenant_id=tenant, name=name, kind=kind,
            secret_hash=digest(secret) if secret else None,
            jwks=json.dumps(jwks) if jwks else None, jwks_uri=jwks_uri,
            redirect_uris=json.dumps(redirects), scope=str(parsed), created_at=utcnow()))
    out: dict[str, Any] = {"client_id": client_id}
    if secret:
        out["client_secret"] = secret
    return out


def create_user(engine: Engine, *, tenant: str, username: str, password: str, role: str,
                fhir_user: str | None = None) -> dict[str, Any]:
    _tenant_exists(engine, tenant)
    if role not in known_roles():
        raise AdminError(f"role must be one of {', '.join(known_roles())}")
    if not username or len(username) > 128 or username != username.strip():
        raise AdminError("username must be 1-128 characters without surrounding spaces")
    if len(password) < 12:
        raise AdminError("password must have at least 12 characters")
    if fhir_user is not None and not _FHIR_USER.match(fhir_user):
        raise AdminError("fhir-user must look like Practitioner/ID (or Patient, PractitionerRole, RelatedPerson, Person)")
    try:
        with write_connection(engine) as conn, conn.begin():
            conn.execute(sa.insert(T["user"]).values(
                tenant_id=tenant, username=username, password_hash=hash_password(password),
                role=role, fhir_user=fhir_user, failed_logins=0, created_at=utcnow()))
    except IntegrityError:
        raise AdminError(f"user {username!r} already exists in tenant {tenant!r}") from None
    return {"tenant": tenant, "username": username, "role": role, "fhir_user": fhir_user}


def issue_initial_token(engine: Engine, tenant: str, lifetime: int = INITIAL_TOKEN_LIFETIME) -> dict[str, Any]:
    """A single-use RFC 7591 initial access token for one dynamic registration in ``tenant``."""
    _tenant_exists(engine, tenant)
    token = new_secret(32)
    expires = in_seconds(lifetime)
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.insert(T["initial"]).values(token_hash=digest(token), tenant_id=tenant,
                                                    created_at=utcnow(), expires_at=expires))
    return {"initial_access_token": token, "tenant": tenant, "expires_at": expires.isoformat()}


def create_launch(engine: Engine, tenant: str, *, patient: str | None, encounter: str | None = None,
                  lifetime: int = LAUNCH_LIFETIME) -> dict[str, Any]:
    """Mint an EHR launch context; the EHR opens the app with ``launch=<id>&iss=<FHIR base>``."""
    _tenant_exists(engine, tenant)
    if not patient and not encounter:
        raise AdminError("a launch needs a patient and/or an encounter")
    launch_id = new_secret(18)
    now = utcnow()
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.insert(T["launch"]).values(id=launch_id, tenant_id=tenant, patient=patient,
                                                   encounter=encounter, created_at=now,
                                                   expires_at=in_seconds(lifetime, now=now)))
    return {"launch": launch_id, "patient": patient, "encounter": encounter}
