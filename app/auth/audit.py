"""AuditEvents for authentication events (token issued or refused, login, logout, revocation).

Stored append-only in ``auth_audit_event`` as FHIR R4 AuditEvent JSON, with the tenant, so
the FHIR side can serve them to admins and auditors. They name the client, the user and the
source address, and say what happened; never a token, a password or a patient detail.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.auth.crypto import new_secret, utcnow
from app.auth.models import T
from app.db import write_connection

log = logging.getLogger("therabridge.auth")

DCM = "http://dicom.nema.org/resources/ontology/DCM"
# event name -> (subtype code, display); DICOM "User Authentication" (110114) subtypes, and
# our own names for OAuth events that DICOM has no code for.
EVENTS: dict[str, tuple[str, str, str]] = {
    "login": (DCM, "110122", "Login"),
    "logout": (DCM, "110123", "Logout"),
    "token": ("https://therabridge.dev/audit", "token", "Token request"),
    "authorize": ("https://therabridge.dev/audit", "authorize", "Authorization decision"),
    "revoke": ("https://therabridge.dev/audit", "revoke", "Token revocation"),
    "register": ("https://therabridge.dev/audit", "register", "Client registration"),
}
OUTCOME = {True: "0", False: "4"}  # success / minor failure (AuditEvent.outcome)


def auth_event(event: str, *, success: bool, tenant: str | None, client_id: str | None = None,
               user: str | None = None, source: str | None = None, detail: str | None = None) -> dict[str, Any]:
    system, code, display = EVENTS[event]
    now = utcnow()
    network = {"address": source, "type": "2"} if source else None  # type 2 = IP address
    agents: list[dict[str, Any]] = []
    if client_id:
        agents.append(_agent("client", "urn:therabridge:client", client_id, requestor=user is None, network=network))
    if user:
        agents.append(_agent("user", "urn:therabridge:user", user, requestor=True, network=network))
    if not agents:
        agents.append(_agent("anonymous", None, None, requestor=True, network=network))
    doc: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": new_secret(12),
        "type": {"system": DCM, "code": "110114", "display": "User Authentication"},
        "subtype": [{"system": system, "code": code, "display": display}],
        "action": "E",
        "recorded": now.isoformat().replace("+00:00", "Z"),
        "outcome": OUTCOME[success],
        "agent": agents,
        "source": {"observer": {"display": "therabridge-auth"}},
    }
    if detail:
        doc["outcomeDesc"] = detail
    return doc


def _agent(kind: str, system: str | None, value: str | None, *, requestor: bool,
           network: dict[str, str] | None) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": {"text": kind},
                             "who": {"identifier": {"system": system, "value": value}} if value else {"display": kind},
                             "requestor": requestor}
    if network:
        agent["network"] = network
    return agent


def record(target: Engine | Connection, event: str, **kwargs: Any) -> None:
    """Write one authentication AuditEvent, inside ``target``'s transaction if it is a connection."""
    doc = auth_event(event, **kwargs)
    row = {"tenant_id": kwargs.get("tenant"), "recorded": utcnow(), "content": json.dumps(doc),
           "action": doc["action"], "outcome": doc["outcome"],
           "agent": kwargs.get("user") or kwargs.get("client_id")}
    log.info("auth event %s outcome=%s client=%s", event, doc["outcome"], kwargs.get("client_id"))
    if isinstance(target, Connection):
        target.execute(sa.insert(T["audit"]).values(**row))
        return
    with write_connection(target) as conn, conn.begin():
        conn.execute(sa.insert(T["audit"]).values(**row))
