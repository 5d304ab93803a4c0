"""HTTP operations for claims and eligibility, with their OperationDefinitions."""
from __future__ import annotations

from pathlib import Path
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.claims import authorizations, corrections, workflow
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.http import fhir_response
from app.fhir.operations import register_operations
from app.fhir.routes import operation_context, operation_params, require, store_for
from app.fhir.store import Reader
from app.fhir.validation import check_resource
from app.payers import submission

router = APIRouter(prefix="/fhir", tags=["Claims"])


register_operations(Path(__file__).parent / "data" / "operations.json")


@router.post("/Encounter/{encounter_id}/$generate-claim", summary="Generate the claim for an Encounter")
async def generate_claim(encounter_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Encounter"), ("c", "Claim"), ("u", "Claim"), ("c", "Task")):
        require(ctx, interaction, rtype)
    params, _ = await operation_params(request, svc)
    ts = store_for(svc, ctx)

    def run() -> tuple:
        with ts.unit() as unit:
            return workflow.generate_claim(unit, encounter_id, profile=params.get("profile"), now=unit.now)

    stored, outcome, _held = await run_in_threadpool(run)
    return fhir_response(workflow.result_bundle(svc.base, stored, outcome, instant(stored.last_updated)))


@router.post("/Claim/$scrub", summary="Scrub a Claim given in the body")
async def scrub_posted(request: Request) -> Response:
    svc, ctx = await operation_context(request)
    require(ctx, "r", "Claim")
    params, body = await operation_params(request, svc)
    if body is None:
        raise FhirError(400, "required", "Send the Claim to scrub in the body", expression=["Claim"])
    check_resource(body, expected_type="Claim")
    ts = store_for(svc, ctx)

    def run() -> dict:
        with ts.store.engine.connect() as conn:
            return workflow.scrub_claim(Reader(ts, conn), body, profile=params.get("profile"))

    return fhir_response(await run_in_threadpool(run))


@router.post("/Claim/{claim_id}/$scrub", summary="Scrub a stored Claim")
async def scrub_stored(claim_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    require(ctx, "r", "Claim")
    params, _ = await operation_params(request, svc)
    ts = store_for(svc, ctx)

    def run() -> dict:
        with ts.store.engine.connect() as conn:
            reader = Reader(ts, conn)
            return workflow.scrub_claim(reader, reader.read("Claim", claim_id).resource(), profile=params.get("profile"))

    return fhir_response(await run_in_threadpool(run))


@router.post("/Coverage/{coverage_id}/$eligibility-request", summary="Store an eligibility request for a Coverage")
async def eligibility_request(coverage_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    require(ctx, "r", "Coverage")
    require(ctx, "c", "CoverageEligibilityRequest")
    params, _ = await operation_params(request, svc)
    try:
        serviced = date.fromisoformat(params["servicedDate"]) if params.get("servicedDate") else None
    except ValueError:
        raise FhirError(400, "invalid", f"servicedDate must be a date (YYYY-MM-DD), not {params['servicedDate']!r}",
                        expression=["servicedDate"]) from None
    ts = store_for(svc, ctx)

    def run():  # type: ignore[no-untyped-def]
        with ts.unit() as unit:
            return workflow.eligibility_request(unit, coverage_id, serviced=serviced or unit.now.date(),
                                                discipline=params.get("discipline", "OT"),
                                                provider=params.get("provider"), now=unit.now)

    v = await run_in_threadpool(run)
    return fhir_response(v.content, 201, {"Location": f"{svc.base}/CoverageEligibilityRequest/{v.id}/_history/1",
                                          "ETag": v.etag})


@router.post("/Claim/{claim_id}/$void", summary="Void a Claim the payer holds (frequency 8)")
async def void_claim(claim_id: str, request: Request) -> Response:
    """The void of a submitted or adjudicated claim: a new Claim quoting the payer's number,
    queued for its payer (201, Location); the same void again (200) however often it is asked."""
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Claim"), ("c", "Claim"), ("u", "Claim")):
        require(ctx, interaction, rtype)
    ts = store_for(svc, ctx)

    def run() -> tuple:
        with ts.unit() as unit:
            stored, created = corrections.void(unit, claim_id)
            if created:
                stored, _ = submission.queue_claim(unit, stored.id)
            return stored, created

    stored, created = await run_in_threadpool(run)
    headers = {"ETag": stored.etag, "Content-Location": f"{svc.base}/Claim/{stored.id}"}
    if created:
        headers["Location"] = f"{svc.base}/Claim/{stored.id}/_history/{stored.version_id}"
    return fhir_response(stored.content, 201 if created else 200, headers)


async def _usage(auth_id: str, request: Request) -> Response:
    """Authorized, used and remaining per limit, and the claims counted (computed now, from the
    stored claims that quote the authorization's number)."""
    svc, ctx = await operation_context(request)
    require(ctx, "r", "ClaimResponse")
    require(ctx, "r", "Claim")
    ts = store_for(svc, ctx)

    def run() -> dict:
        with ts.store.engine.connect() as conn:
            return authorizations.usage_parameters(*authorizations.usage_of(Reader(ts, conn), auth_id))

    return fhir_response(await run_in_threadpool(run))


@router.get("/ClaimResponse/{auth_id}/$usage", summary="What the claims under an authorization used of it")
async def authorization_usage(auth_id: str, request: Request) -> Response:
    return await _usage(auth_id, request)


@router.post("/ClaimResponse/{auth_id}/$usage", summary="What the claims under an authorization used of it (POST)")
async def authorization_usage_post(auth_id: str, request: Request) -> Response:
    return await _usage(auth_id, request)
