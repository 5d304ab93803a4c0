"""AuditEvent over FHIR: read and search the append-only audit table; never create, update or delete.

Access needs a scope that names AuditEvent (``user/AuditEvent.rs`` for auditors) or the admin
scope: wildcard scopes such as ``user/*.rs`` do not open the audit trail.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.audit import AUDIT
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.http import check_accept, fhir_response
from app.fhir.routes import parse_query, prefer
from app.fhir.search_params import DateValue, MissingValue, ReferenceValue, TokenValue
from app.fhir.search_sql import date_condition
from app.security import AccessContext
from app.services import Services

router = APIRouter(prefix="/fhir", tags=["Audit"])
COLUMNS = {"action": AUDIT.c.action, "outcome": AUDIT.c.outcome}
REFERENCES = {"patient": AUDIT.c.patient, "entity": AUDIT.c.entity, "agent": AUDIT.c.agent}


def _require_audit_access(ctx: AccessContext, interaction: str) -> None:
    scopes: Any = ctx.scopes
    named = any(getattr(s, "resource_type", None) == "AuditEvent" and s.matches(interaction, "AuditEvent")
                for s in getattr(scopes, "resources", ()))
    admin = hasattr(scopes, "has") and scopes.has("__admin")
    if not (named or admin):
        raise FhirError(403, "forbidden", "Reading the audit trail needs an AuditEvent scope (auditors) or admin access",
                        headers={"WWW-Authenticate": 'Bearer realm="therabridge", error="insufficient_scope"'})


async def _ctx(request: Request) -> tuple[Services, AccessContext]:
    svc: Services = request.app.state.services
    return svc, await svc.authenticate(request)


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


@router.get("/AuditEvent", summary="Search the audit trail")
async def search(request: Request) -> Response:
    svc, ctx = await _ctx(request)
    check_accept(request)
    _require_audit_access(ctx, "s")
    items = list(request.query_params.multi_items())
    query = parse_query(svc, "AuditEvent", items, prefer(request, "handling") == "strict")
    supported = {"date", "_lastUpdated", *COLUMNS, *REFERENCES}
    unsupported = [c.param for c in query.clauses if c.param not in supported]
    if unsupported and prefer(request, "handling") == "strict":
        raise FhirError(400, "not-supported", "Unsupported AuditEvent search parameters: " + ", ".join(unsupported))
    conds = [AUDIT.c.tenant_id == ctx.tenant_id, *_conditions([c for c in query.clauses if c.param in supported])]
    before = request.query_params.get("_page")
    if before:
        if not before.isdigit():
            raise FhirError(400, "invalid", "The _page value is not a page link this server issued", expression=["_page"])
        conds.append(AUDIT.c.pk < int(before))

    def run() -> tuple[list[Any], int | None]:
        with svc.engine.connect() as conn:
            rows = conn.execute(sa.select(AUDIT.c.pk, AUDIT.c.content).where(*conds)
                                .order_by(AUDIT.c.pk.desc()).limit(query.count + 1)).all()
            total = None
            if query.total != "none" and not before:
                total = conn.execute(sa.select(sa.func.count()).select_from(AUDIT).where(*conds)).scalar_one()
        return rows, total

    rows, total = await run_in_threadpool(run)
    more = len(rows) > query.count
    rows = rows[: query.count]
    applied = [*query.applied, ("_count", str(query.count))]
    links = [{"relation": "self", "url": f"{svc.base}/AuditEvent?{urlencode(applied + ([('_page', before)] if before else []))}"}]
    if more and rows:
        links.append({"relation": "next", "url": f"{svc.base}/AuditEvent?{urlencode(applied + [('_page', str(rows[-1].pk))])}"})
    head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                            "meta": {"lastUpdated": instant(svc.store.clock())}}
    if total is not None:
        head["total"] = total
    head["link"] = links
    entries = [f'{{"fullUrl":"{svc.base}/AuditEvent/{r.pk}","resource":{_with_id(r)},"search":{{"mode":"match"}}}}'
               for r in rows]
    body = orjson.dumps(head)[:-1].decode() + (',"entry":[' + ",".join(entries) + "]" if entries else "") + "}"
    return fhir_response(body.encode())


def _with_id(row: Any) -> str:
    """Audit documents are addressed by their row number, the id under which they are served."""
    doc = orjson.loads(row.content)
    doc["id"] = str(row.pk)
    return orjson.dumps({"resourceType": "AuditEvent", **{k: v for k, v in doc.items() if k != "resourceType"}}).decode()


@router.get("/AuditEvent/{event_id}", summary="Read one AuditEvent")
async def read(event_id: str, request: Request) -> Response:
    svc, ctx = await _ctx(request)
    _require_audit_access(ctx, "r")
    if not event_id.isdigit():
        raise FhirError(404, "not-found", f"AuditEvent/{event_id} is not known")
    with svc.engine.connect() as conn:
        row = conn.execute(sa.select(AUDIT.c.pk, AUDIT.c.content).where(
            AUDIT.c.tenant_id == ctx.tenant_id, AUDIT.c.pk == int(event_id))).first()
    if row is None:
        raise FhirError(404, "not-found", f"AuditEvent/{event_id} is not known")
    return fhir_response(_with_id(row).encode())


@router.api_route("/AuditEvent", methods=["POST", "PUT"], include_in_schema=False)
@router.api_route("/AuditEvent/{event_id}", methods=["PUT", "DELETE", "PATCH"], include_in_schema=False)
async def immutable(request: Request) -> Response:
    raise FhirError(405, "not-supported", "AuditEvents are written by the server and can never be created, "
                                          "changed or deleted through the API")
