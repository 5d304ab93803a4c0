"""FHIR operations of the payer side: ``Claim/{id}/$submit``, ``CoverageEligibilityRequest/$submit``,
``Claim/{id}/$appeal`` and the A/R report ``Claim/$ar-aging``.

Include ``router`` in the app (any position: no generic route takes these POST paths)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.fhir import exact_json
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.http import fhir_response
from app.fhir.operations import register_operations
from app.fhir.validation import check_resource
from app.fhir.routes import operation_context, operation_params, require, store_for
from app.measures import ar_aging as aging_report
from app.payers import aging, appeals, eligibility, prior_auth, rule_proposals, submission, unapplied
from app.payers.calls import CircuitOpen
from payer_adapters.errors import PayerRejection, TransientPayerError

router = APIRouter(prefix="/fhir", tags=["Payers"])

register_operations(Path(__file__).parent / "data" / "operations.json")


@router.post("/Claim/{claim_id}/$submit", summary="Submit a clean Claim to its payer")
async def submit_claim(claim_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Claim"), ("u", "Claim")):
        require(ctx, interaction, rtype)
    ts = store_for(svc, ctx)
    if await run_in_threadpool(_asks_authorization, ts, claim_id):
        return await _request_authorization(svc, ctx, ts, claim_id)

    def run() -> Any:
        with ts.unit() as unit:
            return submission.queue_claim(unit, claim_id)

    stored, status = await run_in_threadpool(run)
    return fhir_response(stored.content, status, {"ETag": stored.etag,
                                                  "Content-Location": f"{svc.base}/Claim/{claim_id}"})


@router.post("/Claim/{claim_id}/$appeal", summary="Appeal the payer's denial of a Claim")
async def appeal_claim(claim_id: str, request: Request) -> Response:
    """The appeal letter, its enclosures and how it is sent (``app.payers.appeals``): 201 with a
    collection Bundle of the letter, the denial Task and the send Task when a person sends it."""
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Claim"), ("u", "Claim"), ("c", "DocumentReference")):
        require(ctx, interaction, rtype)
    ts = store_for(svc, ctx)

    def run() -> appeals.Appeal:
        with ts.unit() as unit:
            return appeals.appeal(unit, claim_id)

    made = await run_in_threadpool(run)
    entries = [made.letter, made.task, *([made.send_task] if made.send_task else [])]
    body = {"resourceType": "Bundle", "type": "collection", "timestamp": instant(made.letter.last_updated),
            "entry": [{"fullUrl": f"{svc.base}/{v.type}/{v.id}", "resource": v.resource()} for v in entries]}
    return fhir_response(body, 201, {"Location": f"{svc.base}/DocumentReference/{made.letter.id}/_history/"
                                                 f"{made.letter.version_id}"})


def _asks_authorization(ts: Any, claim_id: str) -> bool:
    with ts.reading() as reader:
        current = reader.current("Claim", claim_id)
    return current is not None and not current.deleted and prior_auth.is_request(current.resource())


async def _request_authorization(svc: Any, ctx: Any, ts: Any, claim_id: str) -> Response:
    """``$submit`` of a prior-authorization request: the payer's decision, stored as the
    authorization (200, the ClaimResponse; see ``prior_auth``)."""
    require(ctx, "c", "ClaimResponse")

    def prepare() -> prior_auth.Prepared:
        with ts.reading() as reader:
            return prior_auth.prepare(reader, claim_id)

    prepared = await run_in_threadpool(prepare)
    try:
        answer = await prior_auth.send(ts, prepared)
    except PayerRejection as rejection:
        raise FhirError(422, "business-rule", "The payer refused the prior-authorization request",
                        issues=rejection.outcome.get("issue") or None) from None
    except (TransientPayerError, CircuitOpen):
        raise FhirError(503, "transient", "The payer did not answer the prior-authorization request; send it "
                        "again later (the payer answers a resend with its first decision)") from None

    def save() -> Any:
        with ts.unit() as unit:
            return prior_auth.store_answer(unit, prepared.claim.resource(), answer)

    stored = await run_in_threadpool(save)
    return fhir_response(stored.content, 200, {"Location": f"{svc.base}/ClaimResponse/{stored.id}",
                                               "ETag": stored.etag})


async def _eligibility(request: Request, request_id: str | None) -> Response:
    svc, ctx = await operation_context(request)
    require(ctx, "c" if request_id is None else "r", "CoverageEligibilityRequest")
    require(ctx, "c", "CoverageEligibilityResponse")
    _, body = await operation_params(request, svc)
    if request_id is None:
        if body is None:
            raise FhirError(400, "required", "Send the CoverageEligibilityRequest in the body",
                            expression=["CoverageEligibilityRequest"])
        check_resource(body, expected_type="CoverageEligibilityRequest")
    ts = store_for(svc, ctx)

    def prepare() -> eligibility.Prepared:
        with ts.unit() as unit:
            return eligibility.prepare(unit, body=body if request_id is None else None, request_id=request_id)

    prepared = await run_in_threadpool(prepare)
    rid = prepared.request.id
    if await run_in_threadpool(eligibility.realtime, prepared.link):
        try:
            result = await eligibility.check_now(ts, prepared)
        except (TransientPayerError, CircuitOpen):
            result = None  # slow or unavailable (or known to be down): the outbox keeps asking
        except PayerRejection as rejection:
            raise FhirError(422, "business-rule", "The payer rejected the eligibility request",
                            issues=rejection.outcome.get("issue") or None) from None
        if result is not None and result.response is not None:
            def save() -> Any:
                with ts.unit() as unit:
                    return eligibility.store_response(unit, prepared.request.resource(), result.response)

            stored = await run_in_threadpool(save)
            return fhir_response(stored.content, 200, {"Location": f"{svc.base}/CoverageEligibilityResponse/{stored.id}",
                                                       "ETag": stored.etag})

    def later() -> None:
        with ts.unit() as unit:
            eligibility.queue(unit, rid)

    await run_in_threadpool(later)
    where = f"{svc.base}/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{rid}"
    return fhir_response({"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational",
        "diagnostics": f"Eligibility request CoverageEligibilityRequest/{rid} was queued; the answer will appear "
                       f"at {where}"}]}, 202, {"Content-Location": where})


@router.post("/CoverageEligibilityRequest/$submit", summary="Store and send an eligibility request")
async def submit_eligibility(request: Request) -> Response:
    return await _eligibility(request, None)


@router.post("/CoverageEligibilityRequest/{request_id}/$submit", summary="Send a stored eligibility request")
async def submit_stored_eligibility(request_id: str, request: Request) -> Response:
    return await _eligibility(request, request_id)


async def _settle_payment(request: Request, eob_id: str, settle: Any) -> Response:
    """Run ``settle(unit, eob_id, params)``: the caller may read the payment and update claims and
    tasks; what the settlement writes on the payment and its reconciliation is the server's."""
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "ExplanationOfBenefit"), ("u", "Claim"), ("u", "Task")):
        require(ctx, interaction, rtype)
    params, _ = await operation_params(request, svc)
    client = store_for(svc, ctx)
    ts = svc.store.for_tenant(ctx.tenant_id, audit=client.audit)  # audited as the caller

    def run() -> Any:
        with client.reading() as reader:
            reader.read("ExplanationOfBenefit", eob_id)  # the caller may see it (404 otherwise)
        with ts.unit() as unit:
            return settle(unit, eob_id, params)

    stored = await run_in_threadpool(run)
    return fhir_response(stored.content, 200, {"ETag": stored.etag})


@router.post("/ExplanationOfBenefit/{eob_id}/$apply-payment", summary="Link an unapplied payment to its Claim")
async def apply_payment(eob_id: str, request: Request) -> Response:
    def settle(unit: Any, eid: str, params: dict[str, str]) -> Any:
        if not params.get("claim"):
            raise FhirError(400, "required", "Name the claim the payment belongs to (claim=Claim/id)",
                            expression=["claim"])
        return unapplied.apply_payment(unit, eid, params["claim"])

    return await _settle_payment(request, eob_id, settle)


@router.post("/ExplanationOfBenefit/{eob_id}/$return-payment", summary="Return an unapplied payment to the payer")
async def return_payment(eob_id: str, request: Request) -> Response:
    return await _settle_payment(request, eob_id,
                                 lambda unit, eid, params: unapplied.return_payment(unit, eid, params.get("reason")))


@router.get("/Claim/$ar-aging", summary="Insurance A/R aging per payer and age bucket")
async def ar_aging(request: Request) -> Response:
    """What payers still owe on the tenant's sent claims, bucketed by age; a report over every
    claim of the tenant, so a caller confined to one patient may not ask for it."""
    svc, ctx = await operation_context(request)
    for rtype in ("Claim", "ExplanationOfBenefit", "Task"):
        require(ctx, "r", rtype)
    if ctx.patient is not None:
        raise FhirError(403, "forbidden", "The A/R aging report covers every patient's claims; a patient-scoped "
                        "token may not ask for it", expression=["Claim"])
    ts = store_for(svc, ctx)
    today = ts.store.clock().date()
    as_of, basis = aging.parse_request(dict(request.query_params), today)
    claims = aging.parse_detail(dict(request.query_params))

    def run() -> dict[str, Any]:
        with ts.reading() as reader:
            return aging.parameters(aging_report.report(reader, as_of, basis, claims=claims), claims=claims, today=today)

    return fhir_response(exact_json.dumps(await run_in_threadpool(run)))


@router.post("/Task/{task_id}/$accept-rule", summary="Accept a proposed payer rule into the practice's rule pack")
async def accept_rule(task_id: str, request: Request) -> Response:
    """A biller accepts a rule-proposal Task: the rule becomes the payer's rule pack's next version."""
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Task"), ("u", "Task"), ("c", "Library")):
        require(ctx, interaction, rtype)
    params, _ = await operation_params(request, svc)
    client = store_for(svc, ctx)

    def run() -> Any:
        with client.unit() as unit:
            unit.read("Task", task_id)  # the caller may see it (404 otherwise)
            return rule_proposals.accept(unit, task_id, rule_text=params.get("rule"), effective=params.get("effective"))

    stored = await run_in_threadpool(run)
    return fhir_response(stored.content, 201, {"ETag": stored.etag, "Location": f"{svc.base}/Library/{stored.id}/_history/{stored.version_id}"})
