"""Reading the audit trail as FHIR AuditEvents: the one search and the one read that every path
serves (the ``/fhir/AuditEvent`` routes and GET entries of batch and transaction Bundles).

The trail is the append-only ``audit_event`` table, never the resource store; who may read it
is decided by :mod:`app.fhir.interactions` before these functions run. Documents are served
under their row number, newest first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.audit import AUDIT
from app.fhir.dates import instant
from app.fhir.errors import NotFound
from app.fhir.paging import Position
from app.fhir.search_params import DateValue, MissingValue, ReferenceValue, SearchQuery, TokenValue
from app.fhir.search_sql import date_condition

if TYPE_CHECKING:
    from app.fhir.store import Store

COLUMNS = {"action": AUDIT.c.action, "outcome": AUDIT.c.outcome}
REFERENCES = {"patient": AUDIT.c.patient, "entity": AUDIT.c.entity, "agent": AUDIT.c.agent}
SUPPORTED = frozenset({"date", "_lastUpdated", *COLUMNS, *REFERENCES})


def unsupported(query: SearchQuery) -> list[str]:
    """The parameters of ``query`` the audit trail cannot filter on (ignored unless strict)."""
    return [c.param for c in query.clauses if c.param not in SUPPORTED]


def _conditions(clauses: list[Any]) -> list[Any]:
    out = []
    for clause in clauses:
        alts = []
        for v in clause.values:
            if isinstance(v, MissingValue):
                continue
            if clause.param in ("date", "_lastUpdated") and isinstance(v, DateValue):
                alts.append(date_condition(AUDIT.c.recorded, AUDIT.c.recorded, v))
            elif clause.param in COLUMNS and isinstance(v, TokenValue):
                alts.append(COLUMNS[clause.param] == v.code)
            elif clause.param in REFERENCES and isinstance(v, ReferenceValue):
                col = REFERENCES[clause.param]
                if clause.param == "entity":
                    alts.append(col == f"{v.type}/{v.id}" if v.type else col.like(f"%/{v.id}"))
                else:  # patient id, or the client id / user name of the agent
                    alts.append(col == v.id)
        if alts:
            out.append(sa.or_(*alts))
    return out


def search(store: Store, base: str, tenant_id: str, query: SearchQuery) -> bytes:
    """The searchset Bundle of the tenant's audit trail for ``query`` (one page of it; page links
    are signed and bound like the resource store's, see ``app.fhir.paging``)."""
    conds = [AUDIT.c.tenant_id == tenant_id,
             *_conditions([c for c in query.clauses if c.param in SUPPORTED])]
    before = query.page
    binding = "audit-trail " + urlencode(sorted(query.applied))
    if before:
        conds.append(AUDIT.c.pk < store.pages.read(before, tenant_id, binding).pk)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(AUDIT.c.pk, AUDIT.c.content).where(*conds)
                            .order_by(AUDIT.c.pk.desc()).limit(query.count + 1)).all()
        total = None
        if query.total != "none" and not before:
            total = conn.execute(sa.select(sa.func.count()).select_from(AUDIT).where(*conds)).scalar_one()
    more = len(rows) > query.count
    rows = rows[: query.count]
    applied = [*query.applied, ("_count", str(query.count))]
    links = [{"relation": "self",
              "url": f"{base}/AuditEvent?{urlencode(applied + ([('_page', before)] if before else []))}"}]
    if more and rows:
        after = store.pages.issue(tenant_id, binding, Position(None, rows[-1].pk))
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(applied + [('_page', after)])}"})
    head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                            "meta": {"lastUpdated": instant(store.clock())}}
    if total is not None:
        head["total"] = total
    head["link"] = links
    entries = [f'{{"fullUrl":"{base}/AuditEvent/{r.pk}","resource":{_with_id(r)},"search":{{"mode":"match"}}}}'
               for r in rows]
    body = orjson.dumps(head)[:-1].decode() + (',"entry":[' + ",".join(entries) + "]" if entries else "") + "}"
    return body.encode()


def read(engine: Engine, tenant_id: str, event_id: str) -> bytes:
    """One AuditEvent of the tenant's trail by its id (the row number)."""
    if not event_id.isdigit() or len(event_id) > 18:  # a BIGINT has at most 19 digits
        raise NotFound(f"AuditEvent/{event_id} is not known")
    with engine.connect() as conn:
        row = conn.execute(sa.select(AUDIT.c.pk, AUDIT.c.content).where(
            AUDIT.c.tenant_id == tenant_id, AUDIT.c.pk == int(event_id))).first()
    if row is None:
        raise NotFound(f"AuditEvent/{event_id} is not known")
    return _with_id(row).encode()


def _with_id(row: Any) -> str:
    """Audit documents are addressed by their row number, the id under which they are served."""
    doc = orjson.loads(row.content)
    doc["id"] = str(row.pk)
    return orjson.dumps({"resourceType": "AuditEvent", **{k: v for k, v in doc.items() if k != "resourceType"}}).decode()
