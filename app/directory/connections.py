"""Payer connections: which adapter reaches each payer Organization of a tenant, how, and with
which (encrypted) credentials. Shared by the CLI, the admin API, claims and the workers."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import app.directory.secrets as secrets
import fhir_mappings
from app.db import write_connection
from app.directory.tables import CONNECTIONS as C
from app.fhir.dates import UTC
from app.fhir.errors import FhirError
from app.fhir.store import Store, Unit
from app.settings import Settings
from fhir_mappings import identifiers
from payer_adapters.registry import adapter_kinds, create_adapter
from payer_adapters.x12 import InMemoryControlNumbers


#: Called in a transaction of the tenant after a connection is added (the payer side installs
#: the start of its collection schedule here).
ON_ADD: list[Callable[[Unit], None]] = []


class DirectoryError(ValueError):
    """A payer connection that cannot be stored as given (message is safe to show)."""


@dataclass(frozen=True)
class PayerLink:
    pk: int
    tenant_id: str
    organization_id: str
    payer_id: str | None
    kind: str
    settings: dict[str, Any]
    encrypted_credentials: str | None
    profile: str | None
    timely_filing_days: int | None
    auto_submit: bool
    status_follow_up_days: int | None = None

    def public(self) -> dict[str, Any]:
        """What an operator may see: never the credentials, only whether there are any."""
        return {"organization": self.organization_id, "payerId": self.payer_id, "kind": self.kind,
                "settings": self.settings, "hasCredentials": bool(self.encrypted_credentials),
                "profile": self.profile, "timelyFilingDays": self.timely_filing_days, "autoSubmit": self.auto_submit,
                "statusFollowUpDays": self.status_follow_up_days}

    def adapter_settings(self, settings: Settings) -> dict[str, Any]:
        return {**self.settings, **secrets.decrypt(settings, self.encrypted_credentials)}




def _row(r: Any) -> PayerLink:
    return PayerLink(r.pk, r.tenant_id, r.organization_id, r.payer_id, r.kind, json.loads(r.settings),
                       r.credentials, r.profile, r.timely_filing_days, bool(r.auto_submit), r.status_follow_up_days)


def _now() -> datetime:
    return datetime.now(UTC)


def _validate(kind: str, settings: dict[str, Any], credentials: dict[str, Any], profile: str | None) -> None:
    if kind not in adapter_kinds():
        raise DirectoryError(f"unknown adapter kind {kind!r}; known: {', '.join(adapter_kinds())}")
    if not isinstance(settings, dict) or not isinstance(credentials, dict):
        raise DirectoryError("settings and credentials must be JSON objects")
    if profile is not None:
        try:
            fhir_mappings.get_profile(profile)
        except KeyError:
            raise DirectoryError(f"unknown payer profile {profile!r}") from None
    try:
        create_adapter(kind, {**settings, **credentials}, http=httpx.AsyncClient(),
                       control_numbers=InMemoryControlNumbers())
    except ValueError as exc:
        raise DirectoryError(str(exc)) from None


def _payer_id(store: Store, tenant: str, organization: str) -> str | None:
    try:
        org = store.for_tenant(tenant).read("Organization", organization).resource()
    except FhirError:
        raise DirectoryError(f"Organization/{organization} is not known in tenant {tenant}") from None
    return identifiers.payer_id(org)


def add(store: Store, settings: Settings, tenant: str, organization: str, kind: str, adapter_settings: dict[str, Any],
        credentials: dict[str, Any] | None = None, *, profile: str | None = None,
        timely_filing_days: int | None = None, auto_submit: bool = False,
        status_follow_up_days: int | None = None) -> PayerLink:
    """Create or replace the connection of ``Organization/organization`` (idempotent)."""
    credentials = credentials or {}
    _validate(kind, adapter_settings, credentials, profile)
    payer_id = _payer_id(store, tenant, organization)
    now = _now()
    values = dict(payer_id=payer_id, kind=kind, settings=json.dumps(adapter_settings),
                  credentials=secrets.encrypt(settings, credentials), profile=profile,
                  timely_filing_days=timely_filing_days, auto_submit=auto_submit,
                  status_follow_up_days=status_follow_up_days, updated_at=now)
    with write_connection(store.engine) as conn, conn.begin():
        found = conn.execute(sa.select(C.c.pk).where(C.c.tenant_id == tenant, C.c.organization_id == organization)).first()
        if found:
            conn.execute(C.update().where(C.c.pk == found.pk).values(**values))
        else:
            conn.execute(C.insert().values(tenant_id=tenant, organization_id=organization, created_at=now, **values))
        link = _get(conn, tenant, organization)
    if ON_ADD:
        with store.for_tenant(tenant).unit() as unit:
            for hook in ON_ADD:
                hook(unit)  # the payer side starts collecting this tenant's answers
    return link  # type: ignore[return-value]


def rotate_credentials(engine: Engine, settings: Settings, tenant: str, organization: str,
                       credentials: dict[str, Any]) -> PayerLink:
    """Replace the credentials (encrypted under the current key)."""
    with write_connection(engine) as conn, conn.begin():
        current = _get(conn, tenant, organization)
        if current is None:
            raise DirectoryError(f"no payer connection for Organization/{organization}")
        _validate(current.kind, current.settings, credentials, current.profile)
        conn.execute(C.update().where(C.c.pk == current.pk).values(
            credentials=secrets.encrypt(settings, credentials), updated_at=_now()))
        return _get(conn, tenant, organization)  # type: ignore[return-value]


def reencrypt_all(engine: Engine, settings: Settings, old_key: str) -> int:
    """After changing THERABRIDGE_KEY_ENCRYPTION_KEY: re-encrypt every stored credential."""
    n = 0
    with write_connection(engine) as conn, conn.begin():
        for r in conn.execute(sa.select(C.c.pk, C.c.credentials).where(C.c.credentials.is_not(None))).all():
            conn.execute(C.update().where(C.c.pk == r.pk).values(
                credentials=secrets.reencrypt(settings, r.credentials, old_key), updated_at=_now()))
            n += 1
    return n


def _get(conn: Connection, tenant: str, organization: str) -> PayerLink | None:
    r = conn.execute(sa.select(C).where(C.c.tenant_id == tenant, C.c.organization_id == organization)).first()
    return _row(r) if r else None


def get(conn: Connection, tenant: str, organization: str) -> PayerLink | None:
    return _get(conn, tenant, organization)


def by_pk(conn: Connection, pk: int) -> PayerLink | None:
    r = conn.execute(sa.select(C).where(C.c.pk == pk)).first()
    return _row(r) if r else None


def list_connections(conn_or_engine: Connection | Engine, tenant: str | None = None) -> list[PayerLink]:
    query = sa.select(C).order_by(C.c.tenant_id, C.c.organization_id)
    if tenant is not None:
        query = query.where(C.c.tenant_id == tenant)
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).all()]
    return [_row(r) for r in conn_or_engine.execute(query).all()]


def for_insurer(conn: Connection, tenant: str, insurer: dict[str, Any] | None) -> PayerLink | None:
    """The connection of a ``Claim.insurer`` / ``CoverageEligibilityRequest.insurer`` reference:
    by ``Organization/<id>``, else by its payer id (any form the identifier resolver accepts)."""
    insurer = insurer or {}
    ref = str(insurer.get("reference") or "")
    if ref.startswith("Organization/"):
        found = _get(conn, tenant, ref.split("/", 1)[1])
        if found:
            return found
    payer_id = identifiers.payer_id(None, insurer)
    if payer_id:
        r = conn.execute(sa.select(C).where(C.c.tenant_id == tenant, C.c.payer_id == payer_id)).first()
        return _row(r) if r else None
    return None


def for_insurer_in(reader: Any, insurer: dict[str, Any] | None) -> PayerLink | None:
    """``for_insurer`` for a store Reader, kept in its transaction's memo when it has one (a
    batch of claims asks about the same payer for every claim)."""
    memo: dict[Any, Any] = getattr(reader, "memo", {})
    key = ("payer-link", orjson.dumps(insurer, option=orjson.OPT_SORT_KEYS))
    if key not in memo:
        memo[key] = for_insurer(reader.conn, reader.tenant_id, insurer)
    return memo[key]
