"""HTTP operations of the patient's share: ``Patient/{id}/$balance``, ``Patient/{id}/$statement``
and ``Encounter/{id}/$estimate``, with their OperationDefinitions.

The caller's scopes decide whether it may ask (a patient-scoped token only about its own
patient: the Patient is read with the caller's access first, so another patient is a 404); the
ledger is then read and written with the server's view, audited as the caller, so every caller
sees the same figures."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.billing import estimates, ledger, statements
from app.fhir import exact_json
from app.fhir.http import fhir_response
from app.fhir.operations import register_operations
from app.fhir.routes import operation_context, operation_params, require, store_for

router = APIRouter(prefix="/fhir", tags=["Billing"])

register_operations(Path(__file__).parent / "data" / "operations.json")


async def _as_caller(request: Request, patient_id: str, needs: list[tuple[str, str]]) -> tuple[Any, Any]:
    """(services, the server's store audited as the caller) once the caller may see the patient."""
    svc, ctx = await operation_context(request)
    for interaction, rtype in needs:
        require(ctx, interaction, rtype)
    client = store_for(svc, ctx)

    def visible() -> None:
        with client.reading() as reader:
            ledger.read_patient(reader, patient_id)

    await run_in_threadpool(visible)
    return svc, svc.store.for_tenant(ctx.tenant_id, audit=client.audit)


@router.post("/Patient/{patient_id}/$balance", summary="The patient's balance after insurance")
async def balance(patient_id: str, request: Request) -> Response:
    svc, ts = await _as_caller(request, patient_id, [("r", "Patient"), ("r", "Account"),
                                                     ("r", "ExplanationOfBenefit")])

    def run() -> dict[str, Any]:
        with ts.unit() as unit:
            account = ledger.ensure_account(unit, ledger.read_patient(unit, patient_id))
            return ledger.balance_parameters(ledger.ledger(unit, patient_id), account, unit.now.date())

    return fhir_response(exact_json.dumps(await run_in_threadpool(run)))


@router.post("/Patient/{patient_id}/$statement", summary="Issue the patient's statement (Invoice and PDF)")
async def statement(patient_id: str, request: Request) -> Response:
    svc, ts = await _as_caller(request, patient_id, [("r", "Patient"), ("u", "Account"), ("r", "Invoice"),
                                                     ("r", "DocumentReference")])

    def run() -> statements.Statement:
        with ts.unit() as unit:
            return statements.make_statement(unit, patient_id)

    made = await run_in_threadpool(run)
    inv = made.invoice
    return fhir_response(inv.content, 201 if made.created else 200, {
        "Location": f"{svc.base}/Invoice/{inv.id}/_history/{inv.version_id}", "ETag": inv.etag,
        "Link": f'<{svc.base}/DocumentReference/{made.document.id}>; rel="related"'})


@router.post("/Encounter/{encounter_id}/$estimate", summary="Estimate the patient's share of a planned visit")
async def estimate(encounter_id: str, request: Request) -> Response:
    svc, ctx = await operation_context(request)
    for interaction, rtype in (("r", "Encounter"), ("r", "Coverage"), ("r", "CoverageEligibilityResponse")):
        require(ctx, interaction, rtype)
    params, _ = await operation_params(request, svc)
    codes = estimates.parse_codes(params["code"]) if params.get("code") else None
    client = store_for(svc, ctx)

    def run() -> dict[str, Any]:
        with client.reading() as reader:
            return estimates.estimate(reader, encounter_id, codes=codes, discipline=params.get("discipline"))

    return fhir_response(exact_json.dumps(await run_in_threadpool(run)))
