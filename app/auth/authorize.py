"""The authorization endpoint and its login and consent steps (SAL-LAUNCH step 4; RFC 6749
§4.1; RFC 7636).

Order of checks (RFC 6749 §4.1.2.1): an unknown client or an unregistered ``redirect_uri``
is shown as an error page and never redirected to; every other problem is redirected back
with ``error`` and the caller's ``state``.

The request then waits in ``auth_pending`` (keyed by the hash of a random id that travels in
the forms) while the user signs in and consents; sign-in also sets a cookie, and consent is
accepted only from the browser that signed in. Approval mints a 60-second, single-use code
bound to client, redirect URI, PKCE challenge, granted scope and launch context.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.auth.clients import get_client, redirect_uris
from app.auth.crypto import as_aware, digest, in_seconds, new_secret, utcnow
from app.auth.models import T
from app.auth.practices import Practice, practices_of
from app.auth.scopes import ScopeSet, role_ceiling
from app.db import ResourceRow, write_connection
from app.settings import Settings

PENDING_LIFETIME = 600  # seconds a user has to sign in and consent
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_PRACTICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
BROWSER_COOKIE = "tb_auth_browser"


class ShowError(Exception):
    """A problem that must be shown to the user, not sent to the redirect URI."""


@dataclass
class RedirectError(Exception):
    """An RFC 6749 §4.1.2.1 error sent back to the client's redirect URI."""

    redirect_uri: str
    error: str
    description: str
    state: str | None

    def location(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        return with_query(self.redirect_uri, params)


def with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def start(engine: Engine, settings: Settings, params: dict[str, str]) -> tuple[str, Any]:
    """Validate an authorization request; returns (pending request id, client)."""
    client = get_client(engine, params.get("client_id"))
    if client is None:
        raise ShowError("Unknown client_id.")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri or redirect_uri not in redirect_uris(client):
        raise ShowError("redirect_uri is missing or not registered for this client.")
    state = params.get("state")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "response_type must be code.")
    if not state:
        raise fail("invalid_request", "state is required.")
    audience = params.get("aud") or params.get("resource")
    if audience != settings.fhir_base:
        raise fail("invalid_request", "aud must be this server's FHIR base URL.")
    challenge = params.get("code_challenge") or ""
    if not _CHALLENGE.match(challenge):
        raise fail("invalid_request", "code_challenge (PKCE) is required.")
    if params.get("code_challenge_method") != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256.")
    requested = ScopeSet.parse(params.get("scope"))
    allowed = requested.within(ScopeSet.parse(client.scope))
    if not allowed:
        raise fail("invalid_scope", "None of the requested scopes is allowed for this client.")
    launch: dict[str, Any] = {}
    if params.get("launch"):
        launch = _launch_context(engine, client.tenant_id, params["launch"])
        if launch is None:
            raise fail("invalid_request", "Unknown or expired launch.")
    elif requested.has("launch"):
        raise fail("invalid_request", "scope launch requires the launch parameter (EHR launch).")
    practice = params.get("practice")
    if practice is not None and not _PRACTICE.match(practice):
        raise fail("invalid_request", "practice must be a practice id.")
    request_id = new_secret(32)
    stored = {
        "redirect_uri": redirect_uri, "state": state, "scope": str(allowed),
        "code_challenge": challenge, "nonce": params.get("nonce"), "launch": launch,
        "requested_practice": practice,
    }
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.delete(T["pending"]).where(T["pending"].c.expires_at < utcnow()))
        conn.execute(sa.insert(T["pending"]).values(
            id_hash=digest(request_id), tenant_id=client.tenant_id, client_id=client.client_id,
            params=json.dumps(stored), expires_at=in_seconds(PENDING_LIFETIME)))
    return request_id, client


def _launch_context(engine: Engine, tenant: str, launch_id: str) -> dict[str, Any] | None:
    table = T["launch"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == launch_id, table.c.tenant_id == tenant)).first()
    if row is None or as_aware(row.expires_at) <= utcnow():
        return None
    return {"patient": row.patient, "encounter": row.encounter}


@dataclass
class Pending:
    request_id: str
    row: Any
    params: dict[str, Any]
    client: Any


def load_pending(engine: Engine, request_id: str | None) -> Pending:
    if not request_id:
        raise ShowError("This sign-in request is missing or has expired; start again from the app.")
    with engine.connect() as conn:
        row = conn.execute(sa.select(T["pending"]).where(T["pending"].c.id_hash == digest(request_id))).first()
    if row is None or as_aware(row.expires_at) <= utcnow():
        raise ShowError("This sign-in request is missing or has expired; start again from the app.")
    client = get_client(engine, row.client_id)
    if client is None:
        raise ShowError("Unknown client_id.")
    return Pending(request_id, row, json.loads(row.params), client)


def attach_user(engine: Engine, pending: Pending, user_id: int) -> str:
    """Record who signed in; returns the browser-binding secret to set as a cookie."""
    browser = new_secret(32)
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.update(T["pending"]).where(T["pending"].c.id_hash == pending.row.id_hash)
                     .values(user_id=user_id, browser_hash=digest(browser)))
    return browser


def practice_of(pending: Pending) -> str:
    """The practice (tenant) the request's token will be confined to."""
    return pending.params.get("practice") or pending.row.tenant_id


def practice_settled(pending: Pending) -> bool:
    return bool(pending.params.get("practice"))


def choose_practice(engine: Engine, pending: Pending, user: Any, practice: str | None = None) -> list[Practice] | None:
    """Settle which practice the token is for, after sign-in.

    Returns the practices to choose from when the user has several and none was asked for
    (launch parameter ``practice``, or the chooser form); otherwise records the choice and
    returns ``None``. A practice the user may not see ends the request with ``access_denied``
    (RFC 6749 §4.1.2.1), the same whether or not the practice exists."""
    params = pending.params
    wanted = practice or params.get("requested_practice")
    if params["launch"]:  # an EHR launch's context belongs to the launching practice
        wanted = wanted or pending.row.tenant_id
        if wanted != pending.row.tenant_id:
            wanted = "\0"  # no such practice: refused below
    available = practices_of(engine, user)
    if wanted is None and len(available) > 1:
        return available
    chosen = available[0] if wanted is None else next((p for p in available if p.id == wanted), None)
    if chosen is None:
        _drop(engine, pending)
        raise RedirectError(params["redirect_uri"], "access_denied",
                            "The user may not access that practice.", params["state"])
    params.update(practice=chosen.id, practice_role=chosen.role)
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.update(T["pending"]).where(T["pending"].c.id_hash == pending.row.id_hash)
                     .values(params=json.dumps(params)))
    return None


def _at_home(pending: Pending, user: Any) -> bool:
    return practice_of(pending) == user.tenant_id


def offered_scopes(pending: Pending, user: Any) -> ScopeSet:
    """What the consent page offers: request ∩ client registration ∩ the ceiling of the user's
    role in the chosen practice."""
    role = pending.params.get("practice_role") or user.role
    return ScopeSet.parse(pending.params["scope"]).within(role_ceiling(role))


def needs_patient_choice(pending: Pending, user: Any, offered: ScopeSet) -> bool:
    if pending.params["launch"].get("patient") or _patient_of(user, pending):
        return False
    return offered.has("launch/patient") or offered.has_patient_scopes


def _patient_of(user: Any, pending: Pending) -> str | None:
    """The patient a ``Patient/…`` user is, in their own practice only."""
    fhir_user = user.fhir_user or ""
    if not _at_home(pending, user):
        return None
    return fhir_user.split("/", 1)[1] if fhir_user.startswith("Patient/") else None


def patient_choices(engine: Engine, tenant: str, limit: int = 200) -> list[tuple[str, str]]:
    """(id, label) of the tenant's patients, for the consent page's ``<select name="patient">``."""
    table = ResourceRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.content).where(
            table.c.tenant_id == tenant, table.c.type == "Patient", table.c.deleted.is_(False))
            .order_by(table.c.id).limit(limit)).all()
    return [(row.id, _patient_label(row.id, row.content)) for row in rows]


def _patient_label(pid: str, content: str) -> str:
    try:
        name = (json.loads(content).get("name") or [{}])[0]
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
    except (ValueError, AttributeError, TypeError, IndexError):
        text = ""
    return f"{text} ({pid})" if text else pid


def _patient_exists(engine: Engine, tenant: str, pid: str) -> bool:
    table = ResourceRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return conn.execute(sa.select(table.c.pk).where(
            table.c.tenant_id == tenant, table.c.type == "Patient", table.c.id == pid,
            table.c.deleted.is_(False))).first() is not None


def decide(engine: Engine, settings: Settings, pending: Pending, user: Any, *, approve: bool,
           selected_scopes: list[str] | None, patient: str | None) -> str:
    """Finish the request: returns the redirect Location (code, or ``access_denied``)."""
    params = pending.params
    state = params["state"]
    if not approve:
        _drop(engine, pending)
        return RedirectError(params["redirect_uri"], "access_denied", "The user denied access.", state).location()
    offered = offered_scopes(pending, user)
    granted = offered
    if selected_scopes is not None:
        granted = ScopeSet.parse(" ".join(selected_scopes)).within(offered)
    if not granted:
        raise ValueError("Choose at least one permission, or deny.")
    launch = params["launch"]
    context: dict[str, Any] = {
        "sub": f"{user.tenant_id}/{user.username}",
        "need_patient_banner": not bool(launch),
        "consented": str(granted),
    }
    if params.get("nonce"):
        context["nonce"] = params["nonce"]
    if user.fhir_user and _at_home(pending, user):
        context["fhirUser"] = f"{settings.fhir_base}/{user.fhir_user}"
    chosen = launch.get("patient") or _patient_of(user, pending)
    if chosen is None and needs_patient_choice(pending, user, granted):
        if not patient or not _patient_exists(engine, practice_of(pending), patient):
            raise ValueError("Choose a patient.")
        chosen = patient
    if chosen and (granted.has_patient_scopes or granted.has("launch/patient") or granted.has("launch")):
        context["patient"] = chosen
    if launch.get("encounter") and (granted.has("launch") or granted.has("launch/encounter")):
        context["encounter"] = launch["encounter"]
    code = new_secret(32)
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.insert(T["code"]).values(
            code_hash=digest(code), grant_id=new_secret(16), tenant_id=practice_of(pending),
            client_id=pending.client.client_id, user_id=user.id, redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"], scope=str(granted), context=json.dumps(context),
            expires_at=in_seconds(settings.auth_code_lifetime)))
        conn.execute(sa.delete(T["pending"]).where(T["pending"].c.id_hash == pending.row.id_hash))
    return with_query(params["redirect_uri"], {"code": code, "state": state})


def _drop(engine: Engine, pending: Pending) -> None:
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.delete(T["pending"]).where(T["pending"].c.id_hash == pending.row.id_hash))
