"""Claim submission: ``$submit`` queues a clean claim under a fresh idempotency key; the
``submit-claims`` job sends it exactly once (design.md §2 "Outbox"; reference §2.5 item 3).

The key is minted and stored on the Claim in the same transaction as the job. The job first
asks the payer whether that key already arrived (``find_submission``: a worker killed after
sending must not send again), else sends under the key, then records the receipt. Transport
failures re-raise so the outbox retries with backoff; a payer's "no" is recorded (lifecycle
``rejected``, a ClaimResponse with the reasons, a biller Task) and not retried.

One claim per job for now: the X12 adapters could batch many claims per file.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from app.claims import workflow
from app.claims.workflow import lifecycle
from app.fhir.errors import FhirError
from app.fhir.store import Store, Unit, Version
from app.jobs import J, enqueue, register_handler
from app.payers import directory
from app.payers.lifecycle import SUBMISSION_KEY, advance, rank, submission_key
from app.payers.models import SUBMISSIONS as S
from app.payers.outcomes import biller_task, issues_text, put, rejection_response, stable_id
from app.payers.packages import claim_package
from app.payers.posting import paid_state_from_claim_response
from app.payers.runtime import control_numbers, run_async, runtime
from payer_adapters.base import PayerRejection, Receipt, TransientPayerError, create_adapter

log = logging.getLogger("therabridge.payers")

KIND = "submit-claims"
INQUIRE = "inquire-claim"
RECEIPT_URL = "https://therabridge.dev/fhir/StructureDefinition/claim-submission"
INQUIRE_DELAY = timedelta(seconds=5)


def queue_claim(unit: Unit, claim_id: str) -> tuple[Version, int]:
    """Queue ``Claim/claim_id`` for submission: (stored Claim, 202 queued now | 200 already)."""
    current = unit.read("Claim", claim_id)
    claim = current.resource()
    code = lifecycle(claim)
    if rank(code) >= rank("queued"):
        return current, 200
    if code == "draft" or claim.get("status") in ("draft", "cancelled", "entered-in-error"):
        outcome = workflow.scrub_claim(unit, claim, profile=None)
        issues = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")] or [
            {"severity": "error", "code": "business-rule",
             "diagnostics": f"Claim/{claim_id} is {claim.get('status')}: only a clean, active claim is submitted"}]
        raise FhirError(422, "business-rule", "The claim is held and cannot be submitted", issues=issues)
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None:
        raise FhirError(422, "business-rule", "No payer connection is registered for this claim's insurer; "
                        "add one with `therabridge payers add` or POST /admin/payers", expression=["Claim.insurer"])
    key = uuid.uuid4().hex
    claim["identifier"] = [i for i in claim.get("identifier") or [] if i.get("system") != SUBMISSION_KEY] + [
        {"system": SUBMISSION_KEY, "value": key}]
    advance(claim, "queued", unit.now)
    stored = unit.update("Claim", claim_id, claim).version
    unit.conn.execute(S.insert().values(tenant_id=unit.tenant_id, submission_key=key, claim_id=claim_id,
                                        connection_pk=link.pk, status="queued", created_at=unit.now))
    enqueue(unit, KIND, {"claim": claim_id, "key": key}, dedupe_key=f"{KIND}:{key}")
    return stored, 202


def on_write(unit: Unit, new: Version, previous: Version | None) -> None:
    """Auto-submit: a Claim that becomes clean is queued when its payer says so."""
    if new.type != "Claim" or not new.content:
        return
    claim = orjson.loads(new.content)
    if lifecycle(claim) != "clean" or claim.get("status") != "active":
        return
    if previous is not None and previous.content and lifecycle(orjson.loads(previous.content)) == "clean":
        return
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is not None and link.auto_submit:
        queue_claim(unit, new.id)


def _record_receipt(claim: dict[str, Any], receipt: Receipt) -> None:
    subs = [{"url": "key", "valueString": receipt.idempotency_key},
            {"url": "submissionId", "valueString": receipt.submission_id}]
    if receipt.file_name:
        subs.append({"url": "fileName", "valueString": receipt.file_name})
    if receipt.control_numbers:
        subs.append({"url": "controlNumbers", "valueString": orjson.dumps(receipt.control_numbers).decode()})
    if receipt.replayed:
        subs.append({"url": "replayed", "valueBoolean": True})
    claim["extension"] = [e for e in claim.get("extension") or [] if e.get("url") != RECEIPT_URL] + [
        {"url": RECEIPT_URL, "extension": subs}]


def _send(unit: Unit, link: directory.PayerLink, claim: dict[str, Any], key: str) -> Receipt:
    rt = runtime()
    pkg = claim_package(unit, claim)
    numbers = control_numbers(unit)

    async def call() -> Receipt:
        async with rt.http_factory() as http:
            adapter = create_adapter(link.kind, link.adapter_settings(rt.settings), http=http,
                                     control_numbers=numbers)
            try:
                found = await adapter.find_submission(key)
                return found or await adapter.submit_claims([pkg], idempotency_key=key)
            finally:
                close = getattr(adapter, "close", None)
                if close is not None:
                    await close()

    return run_async(call)


def run_submit(unit: Unit, payload: dict[str, Any]) -> None:
    claim_id, key = payload["claim"], payload["key"]
    current = unit.current("Claim", claim_id)
    if current is None or current.deleted:
        return
    claim = current.resource()
    if submission_key(claim) != key or _status(unit, key) != "queued":
        return  # superseded, or the receipt is already recorded: nothing to send
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None:
        _rejected(unit, claim, key, {"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "not-found", "diagnostics": "no payer connection for the claim's insurer"}]},
            source="no payer connection")
        return
    try:
        receipt = _send(unit, link, claim, key)
    except TransientPayerError:
        raise  # the outbox retries with backoff, same key
    except PayerRejection as rejection:
        _rejected(unit, claim, key, rejection.outcome, source="payer")
        return
    advance(claim, "submitted", unit.now)
    _record_receipt(claim, receipt)
    controls = receipt.control_numbers or {}
    st = controls.get("ST")
    unit.conn.execute(S.update().where(S.c.tenant_id == unit.tenant_id, S.c.submission_key == key).values(
        status="submitted", file_name=receipt.file_name, submitted_at=unit.now,
        group_control=str(int(controls["GS"])) if str(controls.get("GS", "")).isdigit() else controls.get("GS"),
        set_controls=",".join(st) if isinstance(st, list) else st, submission_id=receipt.submission_id[:200]))
    if receipt.synchronous_response:
        post_claim_response(unit, claim, receipt.synchronous_response, source=f"submit:{key}")
    unit.update("Claim", claim_id, claim)


def _status(unit: Unit, key: str) -> str | None:
    """The submission's own state. Not the Claim's lifecycle: the payer's answer to a call that
    timed out can be collected (and move the Claim on) before the retry records the receipt."""
    return unit.conn.execute(sa.select(S.c.status).where(S.c.tenant_id == unit.tenant_id,
                                                         S.c.submission_key == key)).scalar()


def post_claim_response(unit: Unit, claim: dict[str, Any], response: dict[str, Any], *, source: str) -> None:
    """Store a payer's FHIR ClaimResponse and move the claim's lifecycle (caller saves the Claim)."""
    response = dict(response)
    response["id"] = stable_id("claim-response", claim["id"], response.get("id") or source, response.get("outcome"))
    response["request"] = {**(response.get("request") or {}), "reference": f"Claim/{claim['id']}"}
    put(unit, response)
    outcome = response.get("outcome")
    if outcome == "error":
        advance(claim, "rejected", unit.now)
        biller_task(unit, claim, "claim-rejected", "Claim rejected by the payer",
                    "The payer rejected this claim: correct it and generate a new claim.",
                    [((e.get("code") or {}).get("text") or "") for e in response.get("error") or []], unit.now,
                    key=f"{claim['id']}:{source}")
    elif outcome == "queued":
        advance(claim, "accepted", unit.now)
        _queue_inquiry(unit, claim["id"], 1)
    elif outcome in ("complete", "partial"):
        advance(claim, "accepted", unit.now)
        advance(claim, paid_state_from_claim_response(response), unit.now)


def _queue_inquiry(unit: Unit, claim_id: str, attempt: int) -> None:
    dedupe = f"{INQUIRE}:{claim_id}:{attempt}"
    if enqueue(unit, INQUIRE, {"claim": claim_id, "attempt": attempt}, dedupe_key=dedupe):
        delay = INQUIRE_DELAY * min(2 ** (attempt - 1), 720)
        unit.conn.execute(J.update().where(J.c.tenant_id == unit.tenant_id, J.c.dedupe_key == dedupe)
                          .values(run_after=unit.now + delay))


def run_inquire(unit: Unit, payload: dict[str, Any]) -> None:
    """Ask the payer about a pended claim; pended again → ask later (a new job, growing delay)."""
    claim_id, attempt = payload["claim"], int(payload.get("attempt", 1))
    current = unit.current("Claim", claim_id)
    if current is None or current.deleted:
        return
    claim = current.resource()
    if rank(lifecycle(claim)) > rank("accepted"):
        return
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None:
        return
    rt = runtime()
    pkg = claim_package(unit, claim)

    async def call() -> dict[str, Any] | None:
        async with rt.http_factory() as http:
            adapter = create_adapter(link.kind, link.adapter_settings(rt.settings), http=http,
                                     control_numbers=control_numbers(unit))
            return await adapter.inquire({"claim": claim, "resources": pkg.resources})

    try:
        response = run_async(call)
    except PayerRejection:
        log.warning("claim inquiry refused by the payer (attempt %s)", attempt)
        response = None
    if response is None or response.get("outcome") == "queued":
        if attempt < 12:
            _queue_inquiry(unit, claim_id, attempt + 1)
        return
    post_claim_response(unit, claim, response, source=f"inquire:{attempt}")
    unit.update("Claim", claim_id, claim)


def _rejected(unit: Unit, claim: dict[str, Any], key: str, outcome: dict[str, Any], *, source: str) -> None:
    put(unit, rejection_response(claim, outcome, unit.now, source=source))
    advance(claim, "rejected", unit.now)
    unit.update("Claim", claim["id"], claim)
    unit.conn.execute(S.update().where(S.c.tenant_id == unit.tenant_id, S.c.submission_key == key)
                      .values(status="rejected"))
    biller_task(unit, claim, "claim-rejected", "Claim rejected", "The claim was not accepted for submission: "
                "correct it and generate a new claim.", issues_text(outcome), unit.now, key=f"{claim['id']}:{key}")


def submissions_of(unit: Unit, claim_id: str) -> list[Any]:
    return unit.conn.execute(sa.select(S).where(S.c.tenant_id == unit.tenant_id, S.c.claim_id == claim_id)).all()


def install(store: Store) -> None:
    if on_write not in store.observers:
        store.observers.append(on_write)
    register_handler(KIND, run_submit)
    register_handler(INQUIRE, run_inquire)

