"""``Measure`` over FHIR: the published KPI definitions (read and search, never written) and
``Measure/{id}/$evaluate-measure``.

Include ``router`` before the generic FHIR router: Measures are served from their data file,
not from the resource store, so these routes must win over the generic read and search.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.fhir import exact_json
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.http import check_accept, fhir_response
from app.fhir.interactions import permit
from app.fhir.operations import register_operations
from app.fhir.routes import audit_read, operation_context, operation_params, require, store_for
from app.measures import definitions
from app.measures.evaluate import evaluate, parse_request

router = APIRouter(prefix="/fhir", tags=["Measures"])

register_operations(Path(__file__).parent / "data" / "operations.json")

#: Search parameters on Measure and the element each matches exactly.
_SEARCH = {"_id": "id", "url": "url", "name": "name", "title": "title", "status": "status"}
_CONTROL = frozenset({"_count", "_total", "_format", "_summary", "_elements", "_sort"})


def _matches(measure: dict[str, Any], items: list[tuple[str, str]]) -> bool:
    for name, value in items:
        element = _SEARCH.get(name.split(":")[0])
        if element is None:
            continue
        wanted = {v for v in value.split(",") if v}
        have = str(measure.get(element) or "")
        if name.split(":")[0] in ("name", "title") and not name.endswith(":exact"):
            if not any(have.lower().startswith(w.lower()) for w in wanted):
                return False
        elif have not in wanted:
            return False
    return True


@router.get("/Measure", summary="Search the published revenue-cycle KPI Measures")
async def search(request: Request) -> Response:
    svc, ctx = await operation_context(request)
    check_accept(request)
    permit(ctx, svc.registry, "search-type", "Measure")
    items = list(request.query_params.multi_items())
    unknown = sorted({n for n, _ in items if n.split(":")[0] not in _SEARCH and n not in _CONTROL})
    if unknown and (request.headers.get("prefer") or "").replace(" ", "").find("handling=strict") >= 0:
        raise FhirError(400, "not-supported", "Unsupported Measure search parameters: " + ", ".join(unknown),
                        expression=unknown)
    applied = [(n, v) for n, v in items if n.split(":")[0] in _SEARCH]
    found = [m for m in definitions.measures() if _matches(m, applied)]
    audit_read(svc, ctx, "search-type", query=urlencode(applied))
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant(svc.store.clock())},
              "type": "searchset", "total": len(found),
              "link": [{"relation": "self", "url": f"{svc.base}/Measure" + (f"?{urlencode(applied)}" if applied else "")}],
              "entry": [{"fullUrl": f"{svc.base}/Measure/{m['id']}", "resource": m, "search": {"mode": "match"}}
                        for m in found]}
    if not found:
        del bundle["entry"]
    return fhir_response(bundle)


@router.get("/Measure/{measure_id:rid}", summary="Read a published revenue-cycle KPI Measure")
async def read(measure_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    check_accept(request)
    permit(ctx, svc.registry, "read", "Measure")
    measure = definitions.measure(measure_id)
    if measure is None:
        raise FhirError(404, "not-found", f"Measure/{measure_id} is not known; the published Measures are "
                        + ", ".join(definitions.ids()), expression=["Measure.id"])
    audit_read(svc, ctx, "read", entity=f"Measure/{measure_id}")
    return fhir_response(measure, headers={"ETag": f'W/"{measure["meta"]["versionId"]}"'})


@router.api_route("/Measure", methods=["POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
@router.api_route("/Measure/{measure_id:rid}", methods=["PUT", "DELETE", "PATCH", "POST"], include_in_schema=False)
async def read_only(request: Request) -> Response:
    raise FhirError(405, "not-supported", "Measures are published by the server (the revenue-cycle KPIs) and can "
                    "never be created, changed or deleted through the API; it offers read, search-type")


async def _evaluate(request: Request, measure_id: str) -> Response:
    """The report is over every claim of the tenant, so a token confined to one patient may not ask."""
    svc, ctx = await operation_context(request)
    check_accept(request)
    permit(ctx, svc.registry, "read", "Measure")
    for rtype in ("Claim", "ExplanationOfBenefit"):
        require(ctx, "r", rtype)
    if ctx.patient is not None:
        raise FhirError(403, "forbidden", "A KPI covers every patient's claims; a patient-scoped token may not "
                        "evaluate it", expression=["Measure"])
    if definitions.spec(measure_id) is None:
        raise FhirError(404, "not-found", f"Measure/{measure_id} is not known; the published Measures are "
                        + ", ".join(definitions.ids()), expression=["Measure.id"])
    params, _ = await operation_params(request, svc)
    start, end, report_type = parse_request(params)
    ts = store_for(svc, ctx)

    def run() -> dict[str, Any]:
        with ts.reading() as reader:
            return evaluate(reader, measure_id, start, end, report_type)

    report = await run_in_threadpool(run)
    audit_read(svc, ctx, "operation", entity=f"Measure/{measure_id}")
    return fhir_response(exact_json.dumps(report))


@router.get("/Measure/{measure_id:rid}/$evaluate-measure", summary="Evaluate a revenue-cycle KPI over a period")
async def evaluate_get(measure_id: str, request: Request) -> Response:
    return await _evaluate(request, measure_id)


@router.post("/Measure/{measure_id:rid}/$evaluate-measure", summary="Evaluate a revenue-cycle KPI (Parameters body)")
async def evaluate_post(measure_id: str, request: Request) -> Response:
    return await _evaluate(request, measure_id)
