"""AuditEvent over FHIR: read and search the append-only audit trail; never create, update or delete.

Access needs a scope that names AuditEvent (``user/AuditEvent.rs`` for auditors) or the admin
scope: wildcard scopes such as ``user/*.rs`` do not open the audit trail
(:mod:`app.fhir.interactions` decides, for these routes and for Bundle entries alike).
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app import audit_trail
from app.fhir.errors import FhirError
from app.fhir.http import FORM, check_accept, fhir_response, read_body
from app.fhir.interactions import permit
from app.fhir.routes import parse_query, prefer
from app.security import AccessContext
from app.services import Services

router = APIRouter(prefix="/fhir", tags=["Audit"])


async def _ctx(request: Request) -> tuple[Services, AccessContext]:
    svc: Services = request.app.state.services
    return svc, await svc.authenticate(request)


async def _search(request: Request, items: list[tuple[str, str]]) -> Response:
    svc, ctx = await _ctx(request)
    check_accept(request)
    permit(ctx, svc.registry, "search-type", "AuditEvent")
    strict = prefer(request, "handling") == "strict"
    query = parse_query(svc, "AuditEvent", items, strict)
    unsupported = audit_trail.unsupported(query)
    if unsupported and strict:
        raise FhirError(400, "not-supported", "Unsupported AuditEvent search parameters: " + ", ".join(unsupported),
                        expression=unsupported)
    body = await run_in_threadpool(audit_trail.search, svc.store, svc.base, ctx.tenant_id, query)
    return fhir_response(body)


@router.get("/AuditEvent", summary="Search the audit trail")
async def search(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


@router.post("/AuditEvent/_search", include_in_schema=False)
async def search_post(request: Request) -> Response:
    """``POST [base]/AuditEvent/_search`` (form body): the same search of the audit trail."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != FORM:
        raise FhirError(415, "not-supported", f"POST _search takes {FORM}, not {ctype}")
    raw = await read_body(request, request.app.state.services.settings.max_body_bytes)
    items = list(request.query_params.multi_items()) + parse_qsl(raw.decode("utf-8", "replace"),
                                                                  keep_blank_values=True)
    return await _search(request, items)


@router.get("/AuditEvent/{event_id:rid}", summary="Read one AuditEvent")
async def read(event_id: str, request: Request) -> Response:
    svc, ctx = await _ctx(request)
    permit(ctx, svc.registry, "read", "AuditEvent")
    return fhir_response(await run_in_threadpool(audit_trail.read, svc.engine, ctx.tenant_id, event_id))


@router.api_route("/AuditEvent", methods=["POST", "PUT", "DELETE"], include_in_schema=False)
@router.api_route("/AuditEvent/{event_id}", methods=["PUT", "DELETE", "PATCH"], include_in_schema=False)
async def immutable(request: Request) -> Response:
    raise FhirError(405, "not-supported", "AuditEvents are written by the server and can never be created, "
                                          "changed or deleted through the API")
