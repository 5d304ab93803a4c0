"""FHIR R4 REST interactions under ``/fhir`` (R4 http.html).

Handlers are thin: check scopes, parse, call the tenant's store, shape the response. Store
calls that may wait on locks or run longer queries go to the thread pool; a read by id, a
plain create and an update are one or two statements and are awaited in the event loop on
PostgreSQL (``async_pg``).
"""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from app import audit_trail
from app.audit import OUTCOME_OK, interaction_row
from app.fhir.access import compartment_patient
from app.fhir.bundles_out import history_bundle, searchset
from app.fhir.dates import http_date, parse_range
from app.fhir.elements import parse_elements, subset
from app.fhir.errors import FhirError, issue, outcome
from app.fhir.interactions import permit, require_scope, store_access
from app.fhir.operations import operation_definitions, operation_input
from app.fhir.http import (
    FORM, check_accept, fhir_response, parse_if_match, prefer, read_body, read_json, version_headers,
)
from app.fhir.registry import registry
from app.fhir.search_params import SearchQuery, parse_search
from app.fhir.store import TenantStore, Unit, Version
from app.fhir.transactions import BundleProcessor, EntryRequest
from app.fhir.validation import check_bundle, check_resource
from app.security import AccessContext
from app.services import Services

class ResourceTypeConvertor(Convertor):
    """Path segment that can be a resource type name (``Encounter``), never ``_history`` or ``.well-known``."""

    regex = "[A-Z][A-Za-z]{1,63}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class ResourceIdConvertor(ResourceTypeConvertor):
    """Path segment that can be a FHIR id (R4 ``id`` datatype), so ``_history`` and ``$op`` never match."""

    regex = "[A-Za-z0-9\\-.]{1,64}"


register_url_convertor("rtype", ResourceTypeConvertor())
register_url_convertor("rid", ResourceIdConvertor())

router = APIRouter(prefix="/fhir", tags=["FHIR"])

async def services(request: Request) -> Services:
    return request.app.state.services


async def access_context(request: Request) -> AccessContext:
    return await request.app.state.services.authenticate(request)


Svc = Annotated[Services, Depends(services)]
Ctx = Annotated[AccessContext, Depends(access_context)]


def require(ctx: AccessContext, interaction: str, rtype: str) -> None:
    """403 unless the caller's scopes grant ``interaction`` (c r u d s) on ``rtype`` (for the
    operations; the FHIR interactions go through :func:`~app.fhir.interactions.permit`)."""
    require_scope(ctx, registry(), interaction, rtype)


def known_type(svc: Services, rtype: str) -> str:
    if rtype not in svc.registry:
        raise FhirError(404, "not-supported", f"Resource type '{rtype}' is not supported by this server")
    return rtype


def store_for(svc: Services, ctx: AccessContext) -> TenantStore:
    def audit_writes(written: list[tuple[str, Version]]) -> list[dict[str, Any]]:
        return [interaction_row(ctx, ctx.tenant_id, action, outcome=OUTCOME_OK, entity=f"{v.type}/{v.id}",
                                patient=compartment_patient(v.resource(), svc.registry, svc.base) if v.content else None)
                for action, v in written]

    return svc.store.for_tenant(ctx.tenant_id,
                                lambda interaction, rtype: store_access(ctx, svc.registry, interaction, rtype),
                                audit_writes)


def audit_read(svc: Services, ctx: AccessContext, subtype: str, *, entity: str | None = None,
               query: str | None = None) -> None:
    patient = entity.split("/")[1] if entity and entity.startswith("Patient/") else None
    svc.audit.enqueue(interaction_row(ctx, ctx.tenant_id, subtype, outcome=OUTCOME_OK, entity=entity,
                                      query=query, patient=patient))


# -- reads by id come first: the hottest route, matched before everything else ----------
@router.get("/OperationDefinition/{op_id}", summary="OperationDefinition of an operation this server offers")
async def operation_definition(op_id: str) -> Response:
    for d in operation_definitions():
        if d["id"] == op_id:
            return fhir_response(d)
    raise FhirError(404, "not-found", f"OperationDefinition/{op_id} is not known")


# The path's convertors already check both segments; declared to FastAPI they would be
# validated again by a model on every read, so they are only described for the OpenAPI document.
_READ_PATH = {"parameters": [{"in": "path", "name": name, "required": True,
                              "schema": {"title": name.capitalize(), "type": "string"}} for name in ("rtype", "rid")]}


@router.get("/{rtype:rtype}/{rid:rid}", summary="Read", openapi_extra=_READ_PATH)
async def read(request: Request) -> Response:
    # The hottest route: services and the access context are fetched directly, not via Depends.
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    svc: Services = request.app.state.services
    ctx = await svc.authenticate(request)
    check_accept(request)
    permit(ctx, svc.registry, "read", rtype)
    v = await store_for(svc, ctx).aread(rtype, rid)
    audit_read(svc, ctx, "read", entity=f"{rtype}/{rid}")
    return fhir_response(_subsetted(request, v.content), headers={"ETag": v.etag,
                                                                  "Last-Modified": http_date(v.last_updated)})


# -- capabilities ------------------------------------------------------------------------
@router.get("/metadata", summary="CapabilityStatement")
async def metadata(svc: Svc, request: Request) -> Response:
    check_accept(request)
    return fhir_response(svc.capability_bytes(), headers={"Cache-Control": "no-cache"})


# -- whole system ------------------------------------------------------------------------
@router.post("", summary="Batch or transaction Bundle")
async def bundle(request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    body = check_bundle(await read_json(request, svc.settings.max_body_bytes, exact=True))
    kind = body["type"]
    ts = store_for(svc, ctx)
    processor = BundleProcessor(ts, svc.registry, svc.base, lambda i, t: permit(ctx, svc.registry, i, t),
                                lambda unit, e: _entry_get(svc, ctx, unit, e), prefer(request, "return"))
    if kind == "transaction":
        result = await svc.store.run_write(processor.transaction, body)
    else:
        result = await svc.store.run_write(processor.batch, body)
    return fhir_response(result)


@router.get("/_history", summary="System history")
async def system_history(request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    for rtype in svc.registry.offering("history-type"):  # what system history covers
        require_scope(ctx, svc.registry, "s", rtype)
    return await _history(request, svc, ctx, None, None)


# -- type level --------------------------------------------------------------------------
@router.get("/{rtype:rtype}", summary="Search")
async def search_get(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    return await _search(request, svc, ctx, known_type(svc, rtype), list(request.query_params.multi_items()))


@router.post("/{rtype:rtype}/_search", summary="Search (form body)")
async def search_post(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != FORM:
        raise FhirError(415, "not-supported", f"POST _search takes {FORM}, not {ctype}")
    raw = await read_body(request, svc.settings.max_body_bytes)
    items = list(request.query_params.multi_items()) + parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return await _search(request, svc, ctx, known_type(svc, rtype), items)


@router.post("/{rtype:rtype}", summary="Create")
async def create(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "create", rtype)
    body = await read_json(request, svc.settings.max_body_bytes, exact=True)
    check_resource(body, expected_type=rtype)
    body.pop("id", None)  # server-assigned (R4 http.html §3.1.0.8)
    if request.headers.get("if-none-exist"):
        criteria = parse_qsl(request.headers["if-none-exist"].lstrip("?").split("?")[-1], keep_blank_values=True)
        result = await svc.store.run_write(store_for(svc, ctx).create, body, if_none_exist=criteria, client=True)
    else:
        result = await store_for(svc, ctx).acreate(body, client=True)
    return _write_response(request, svc, result.version, result.status)


@router.put("/{rtype:rtype}", summary="Conditional update")
async def conditional_update(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "update", rtype)
    criteria = list(request.query_params.multi_items())
    if not criteria:
        raise FhirError(400, "invalid", "A conditional update needs search criteria in the URL")
    body = await read_json(request, svc.settings.max_body_bytes, exact=True)
    check_resource(body, expected_type=rtype)
    result = await svc.store.run_write(store_for(svc, ctx).conditional_update, rtype, criteria, body,
                                      client=True)
    return _write_response(request, svc, result.version, result.status)


@router.delete("/{rtype:rtype}", summary="Conditional delete")
async def conditional_delete(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    permit(ctx, svc.registry, "delete", rtype)
    criteria = list(request.query_params.multi_items())
    if not criteria:
        raise FhirError(405, "not-supported", "DELETE on a resource type needs search criteria (conditional delete)")
    v = await svc.store.run_write(store_for(svc, ctx).conditional_delete, rtype, criteria, client=True)
    message = f"Deleted {rtype}/{v.id}" if v else f"No {rtype} matched; nothing was deleted"
    return fhir_response(outcome([issue("informational", message, severity="information")]), 200,
                         {"ETag": v.etag} if v else {})


@router.get("/{rtype:rtype}/_history", summary="Type history")
async def type_history(rtype: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "history-type", rtype)
    return await _history(request, svc, ctx, rtype, None)


# -- instance level ----------------------------------------------------------------------
@router.put("/{rtype:rtype}/{rid:rid}", summary="Update (or create with a client id)")
async def update(rtype: str, rid: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "update", rtype)
    if_match = parse_if_match(request.headers.get("if-match"))
    body = await read_json(request, svc.settings.max_body_bytes, exact=True)
    check_resource(body, expected_type=rtype)
    if body.get("id") is None:
        raise FhirError(400, "required", "The resource in an update must carry its id", expression=[f"{rtype}.id"])
    if body["id"] != rid:
        raise FhirError(400, "invalid", f"The body id {body['id']!r} does not match the URL id {rid!r}",
                        expression=[f"{rtype}.id"])
    result = await store_for(svc, ctx).aupdate(rtype, rid, body, if_match=if_match, client=True)
    return _write_response(request, svc, result.version, result.status)


@router.delete("/{rtype:rtype}/{rid:rid}", summary="Delete")
async def delete(rtype: str, rid: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    permit(ctx, svc.registry, "delete", rtype)
    v = await svc.store.run_write(store_for(svc, ctx).delete, rtype, rid, client=True)
    headers = {"ETag": v.etag} if v else {}
    message = f"Deleted {rtype}/{rid}" if v else f"{rtype}/{rid} was already absent"
    return fhir_response(outcome([issue("informational", message, severity="information")]), 200, headers)


@router.get("/{rtype:rtype}/{rid:rid}/_history", summary="Instance history")
async def instance_history(rtype: str, rid: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "history-instance", rtype)
    return await _history(request, svc, ctx, rtype, rid)


@router.get("/{rtype:rtype}/{rid:rid}/_history/{vid}", summary="Version read")
async def vread(rtype: str, rid: str, vid: str, request: Request, svc: Svc, ctx: Ctx) -> Response:
    check_accept(request)
    permit(ctx, svc.registry, "vread", rtype)
    if not vid.isdigit() or len(vid) > 9:  # version ids count from 1 in an INTEGER column
        raise FhirError(404, "not-found", f"{rtype}/{rid} has no version {vid[:20]!r}")
    v = store_for(svc, ctx).vread(rtype, rid, int(vid))
    audit_read(svc, ctx, "vread", entity=f"{rtype}/{rid}/_history/{vid}")
    return fhir_response(_subsetted(request, v.content),
                         headers={"ETag": v.etag, "Last-Modified": http_date(v.last_updated)})


# -- helpers -----------------------------------------------------------------------------
def _subsetted(request: Request, content: str | None) -> str | None:
    """``content`` cut down to the ``_elements`` of the request, if it names any (R4 search.html)."""
    if content is None or b"elements" not in request.scope["query_string"]:  # the common read: no parsing
        return content
    names = parse_elements(",".join(request.query_params.getlist("_elements")))
    return subset(content, names) if names else content


def _write_response(request: Request, svc: Services, v: Version, status: int) -> Response:
    headers = version_headers(v, svc.base)
    ret = prefer(request, "return")
    if ret == "minimal":
        return fhir_response(None, status, headers)
    if ret == "operationoutcome":
        word = "Created" if status == 201 else "Updated"
        return fhir_response(outcome([issue("informational", f"{word} {v.type}/{v.id}", severity="information")]),
                             status, headers)
    return fhir_response(v.content, status, headers)


def parse_query(svc: Services, rtype: str, items: list[tuple[str, str]], strict: bool) -> SearchQuery:
    query = parse_search(svc.registry.types[rtype], items, registry=svc.registry,
                         default_count=svc.settings.default_page_size, max_count=svc.settings.max_page_size,
                         base=svc.base)
    if strict and query.ignored:
        raise FhirError(400, "not-supported", "Unknown or unsupported search parameters: " + ", ".join(query.ignored),
                        expression=query.ignored)
    return query


async def _search(request: Request, svc: Services, ctx: AccessContext, rtype: str,
                  items: list[tuple[str, str]]) -> Response:
    permit(ctx, svc.registry, "search-type", rtype)
    query = parse_query(svc, rtype, items, prefer(request, "handling") == "strict")
    result = await run_in_threadpool(store_for(svc, ctx).search, query)
    audit_read(svc, ctx, "search-type", entity=rtype, query=urlencode(query.applied))
    return fhir_response(searchset(svc.base, query, result, svc.store.clock()))


def _entry_get(svc: Services, ctx: AccessContext, unit: Unit, e: EntryRequest) -> tuple[int, str | None]:
    """GET inside a batch or transaction: read, vread or search against the same Unit (the audit
    trail, kept outside the resource store, is read from its own table)."""
    if svc.registry.types[e.rtype].audit_trail:
        if e.rid:
            return 200, audit_trail.read(svc.engine, ctx.tenant_id, e.rid).decode()
        query = parse_query(svc, e.rtype, e.criteria or [], False)
        return 200, audit_trail.search(svc.store, svc.base, ctx.tenant_id, query).decode()
    if e.rid and e.vid:
        return 200, unit.vread(e.rtype, e.rid, e.vid).content
    if e.rid:
        content = unit.read(e.rtype, e.rid).content
        names = parse_elements(",".join(v for k, v in e.criteria or [] if k == "_elements"))
        return 200, subset(content, names) if names and content else content
    query = parse_query(svc, e.rtype, e.criteria or [], False)
    result = unit.search(query)
    return 200, searchset(svc.base, query, result, svc.store.clock()).decode()


async def _history(request: Request, svc: Services, ctx: AccessContext, rtype: str | None,
                   rid: str | None) -> Response:
    params = request.query_params
    since = None
    if params.get("_since"):
        try:
            since = parse_range(params["_since"])[0]
        except ValueError:
            raise FhirError(400, "invalid", f"_since must be an instant, not {params['_since']!r}",
                            expression=["_since"]) from None
    try:
        count = min(int(params.get("_count", svc.settings.default_page_size)), svc.settings.max_page_size)
    except ValueError:
        raise FhirError(400, "invalid", "_count must be a whole number", expression=["_count"]) from None
    if count < 0:
        raise FhirError(400, "invalid", "_count must not be negative", expression=["_count"])
    ts = store_for(svc, ctx)
    versions, next_cursor = await run_in_threadpool(ts.history, rtype, rid, since=since, count=count,
                                                    page=params.get("_page"))
    if rid and not versions:
        raise FhirError(404, "not-found", f"{rtype}/{rid} is not known")
    subtype = "history-instance" if rid else "history-type" if rtype else "history-system"
    audit_read(svc, ctx, subtype, entity="/".join(p for p in (rtype, rid) if p) or None)
    path = "/".join(p for p in (rtype, rid) if p)
    url = f"{svc.base}/{path}/_history" if path else f"{svc.base}/_history"
    kept = [(k, v) for k, v in params.multi_items() if k in ("_since", "_count")]
    self_url = url + ("?" + urlencode(kept) if kept else "")
    next_url = (url + "?" + urlencode([*kept, ("_page", next_cursor)])) if next_cursor else None
    return fhir_response(history_bundle(svc.base, self_url, versions, next_url, svc.store.clock()))


# -- operations (routes of other packages share these) -------------------------------------
async def operation_params(request: Request, svc: Services) -> tuple[dict[str, str], dict[str, Any] | None]:
    """An operation's parameters from the query string and/or a Parameters (or bare resource) body:
    (named values, the resource given in the body)."""
    params = dict(request.query_params)
    if int(request.headers.get("content-length") or 0) > 0 or request.headers.get("transfer-encoding"):
        return operation_input(await read_json(request, svc.settings.max_body_bytes), params)
    return params, None


async def operation_context(request: Request) -> tuple[Services, AccessContext]:
    """The services and the caller's access context, for an operation route."""
    svc: Services = request.app.state.services
    return svc, await svc.authenticate(request)
