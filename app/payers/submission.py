"""Claim submission: ``$submit`` queues a clean claim under a fresh idempotency key; batches
of claims go to the payer exactly once (an outbox: every step is committed before the next).

Three steps, each durable before the next:
1. ``queue_claim`` mints the claim's key and records a ``submit-claims`` job in the same
   transaction as the Claim's move to ``queued``. A claim already sent is queued again only when
   the payer's last status answer was that it has no such claim on file
   (``status_follow_up.may_resubmit``): the same Claim under a new key.
2. ``form_batches`` (a batch handler: every due ``submit-claims`` job of a tenant claimed
   together) groups the claims per payer connection, up to the adapter's batch size, names each
   batch (its key: a new one, or the claim's own key for a batch of one) and queues one
   ``send-claim-batch`` job per batch. Members and key are committed before anything is sent.
3. ``run_send`` (no transaction held while talking to the payer) first asks the payer whether
   the batch key already arrived (``find_submission``: a worker killed after sending must not
   send again), else sends the batch under the key, then records the receipt on every Claim.
   Transport failures re-raise so the outbox retries with backoff; a payer's "no" is recorded
   (lifecycle ``rejected``, a ClaimResponse with the reasons, a biller Task) and not retried. A
   batch refused as a whole is split into batches of one, so one bad claim holds up no other.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Callable

import orjson
import sqlalchemy as sa

import fhir_mappings
from app import directory
from app.claims import timely_filing, workflow
from app.claims.lifecycle import advance, lifecycle, move, rank, submission_key
from app.fhir.errors import FhirError
from app.fhir.store import NeedsTransaction, Reader, TenantStore, Unit, Version
from app.jobs import enqueue
from app.outbox import QueuedJob
from app.payers import inquiry, posting, status_follow_up
from app.payers.calls import call_payer
from app.payers.models import SUBMISSIONS as S
from app.payers.outcomes import biller_task, issues_text, put, rejection_response
from app.payers.packages import claim_packages
from fhir_mappings.identifiers import patient_control_number
from fhir_mappings.vocabulary import CLAIM_SUBMISSION, PATIENT_CONTROL_NUMBER, SUBMISSION_KEY
from payer_adapters.contract import ClaimPackage, PayerAdapter, Receipt
from payer_adapters.errors import PayerRejection, TransientPayerError
from payer_adapters.registry import claim_batch_size
from payer_adapters.x12 import batch_trace

log = logging.getLogger("therabridge.payers")

KIND = "submit-claims"
AUTO_SUBMIT = "auto-submit-claim"
SEND = "send-claim-batch"


def queue_claim(unit: Unit, claim_id: str) -> tuple[Version, int]:
    """Queue ``Claim/claim_id`` for submission: (stored Claim, 202 queued now | 200 already)."""
    queued: dict[str, Any] = {}

    def mark(claim: dict[str, Any]) -> bool:
        queued.clear()
        code = lifecycle(claim)
        if rank(code) >= rank("queued") and not status_follow_up.may_resubmit(unit, claim):
            return False
        if code == "draft" or claim.get("status") in ("draft", "cancelled", "entered-in-error"):
            outcome = workflow.scrub_claim(unit, claim, profile=None)
            issues = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")] or [
                {"severity": "error", "code": "business-rule",
                 "diagnostics": f"Claim/{claim_id} is {claim.get('status')}: only a clean, active claim is submitted"}]
            raise FhirError(422, "business-rule", "The claim is held and cannot be submitted", issues=issues)
        timely_filing.refuse_late(unit, claim, unit.now.date())
        link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
        if link is None:
            raise FhirError(422, "business-rule", "No payer connection is registered for this claim's insurer; "
                            "add one with `therabridge payers add` or POST /admin/payers",
                            expression=["Claim.insurer"])
        if patient_control_number(claim) is None:  # none of its identifiers fits CLM01: give it ours
            claim["identifier"] = [*(claim.get("identifier") or []),
                                   {"system": PATIENT_CONTROL_NUMBER, "value": fhir_mappings.patient_control_number(claim_id)}]
        queued.update(key=_mark_queued(claim, unit.now), connection=link.pk)
        return True

    written = unit.modify("Claim", claim_id, mark)
    if written is None:
        return unit.read("Claim", claim_id), 200
    _record_queued(unit, claim_id, queued["key"], queued["connection"])
    if rank(lifecycle(written.version.resource())) > rank("queued"):  # the payer had no claim on file: sent again
        status_follow_up.resubmitted(unit, claim_id)
    return written.version, 202


def _mark_queued(claim: dict[str, Any], now: datetime) -> str:
    """Mint the claim's submission key and move it to ``queued`` (the caller stores it)."""
    key = uuid.uuid4().hex
    claim["identifier"] = [i for i in claim.get("identifier") or [] if i.get("system") != SUBMISSION_KEY] + [
        {"system": SUBMISSION_KEY, "value": key}]
    advance(claim, "queued", now)
    return key


_QUEUE = S.insert()


def _record_queued(unit: Unit, claim_id: str, key: str, connection_pk: int) -> None:
    """The claim's queue entry under its new submission key (its job came with the claim's
    write: ``on_write``)."""
    unit.conn.execute(_QUEUE, {"tenant_id": unit.tenant_id, "submission_key": key, "claim_id": claim_id,
                               "connection_pk": connection_pk, "status": "queued", "created_at": unit.now})


def _submit_job(new: Version, claim: dict[str, Any], previous: Version | None) -> list[QueuedJob]:
    """A claim stored under a new submission key (queued by a caller or the auto-submit
    preparer): the job that batches it, written with the claim in the same statement."""
    key = submission_key(claim)
    if key is None or (previous is not None and previous.content and submission_key(previous.parsed) == key):
        return []
    return [QueuedJob(KIND, {"claim": new.id, "key": key}, dedupe_key=f"{KIND}:{key}")]


def unsent(unit: Unit, claim: dict[str, Any]) -> bool:
    """``workflow.UNSENT_CHECKS``: whether the queued ``claim`` still waits in the queue, in no
    batch. Its queue entry stays locked until the caller commits (PostgreSQL), so batching waits
    for the claim being rebuilt instead of sending the version before it."""
    key = submission_key(claim)
    if key is None:
        return False
    row = unit.conn.execute(sa.select(S.c.status).where(
        S.c.tenant_id == unit.tenant_id, S.c.claim_id == claim["id"], S.c.submission_key == key)
        .with_for_update()).first()
    return row is not None and row.status == "queued"


def prepare_auto_submit(unit: Unit, claim: dict[str, Any]) -> workflow.AfterStore | None:
    """Claim preparer (``workflow.CLAIM_PREPARERS``): a clean claim whose payer auto-submits is
    stored already ``queued``, and its job recorded right after — one write, not two."""
    if lifecycle(claim) != "clean" or claim.get("status") != "active":
        return None
    link = directory.for_insurer_in(unit, claim.get("insurer"))
    if link is None or not link.auto_submit or timely_filing.is_late(unit, claim, unit.now.date()):
        return None
    key = _mark_queued(claim, unit.now)
    return lambda stored: _record_queued(unit, stored.id, key, link.pk)


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer for submission: a Claim that becomes clean (a biller's correction, say)
    is queued for submission when its payer says so (claims the server generates clean are
    stored queued already: ``prepare_auto_submit``), and a Claim stored under a new submission
    key brings the job that batches it."""
    if new.type != "Claim" or not new.content:
        return []
    claim = new.parsed
    submit = _submit_job(new, claim, previous)
    if lifecycle(claim) != "clean" or claim.get("status") != "active":
        return submit
    if previous is not None and previous.content and lifecycle(previous.parsed) == "clean":
        return submit
    if unit is None:
        raise NeedsTransaction  # whether the payer auto-submits is in the payer directory
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None or not link.auto_submit:
        return submit
    return [*submit, QueuedJob(AUTO_SUBMIT, {"claim": new.id}, dedupe_key=f"{AUTO_SUBMIT}:{new.id}@{new.version_id}")]


def run_auto_submit(unit: Unit, payload: dict[str, Any]) -> None:
    """Queue the claim as ``queue_claim`` would for a caller. A claim that changed in between
    (no longer clean, deleted, its payer connection removed) has nothing to submit."""
    try:
        queue_claim(unit, payload["claim"])
    except FhirError as err:
        if err.status not in (404, 410, 422):
            raise


def _record_receipt(claim: dict[str, Any], receipt: Receipt, key: str) -> None:
    subs = [{"url": "key", "valueString": key},
            {"url": "submissionId", "valueString": receipt.submission_id}]
    if receipt.idempotency_key != key:
        subs.append({"url": "batch", "valueString": receipt.idempotency_key})
    if receipt.file_name:
        subs.append({"url": "fileName", "valueString": receipt.file_name})
    if receipt.control_numbers:
        subs.append({"url": "controlNumbers", "valueString": orjson.dumps(receipt.control_numbers).decode()})
    if receipt.replayed:
        subs.append({"url": "replayed", "valueBoolean": True})
    claim["extension"] = [e for e in claim.get("extension") or [] if e.get("url") != CLAIM_SUBMISSION] + [
        {"url": CLAIM_SUBMISSION, "extension": subs}]


def form_batches(unit: Unit, payloads: list[dict[str, Any]]) -> None:
    """Batch handler for ``submit-claims``: fix the batches (members and key) of the queued claims."""
    keys = [p["key"] for p in payloads]
    rows = unit.conn.execute(sa.select(S.c.submission_key, S.c.connection_pk).where(
        S.c.tenant_id == unit.tenant_id, S.c.submission_key.in_(keys), S.c.status == "queued").order_by(S.c.pk)).all()
    by_connection: dict[int | None, list[str]] = {}
    for r in rows:
        by_connection.setdefault(r.connection_pk, []).append(r.submission_key)
    for pk, members in by_connection.items():
        link = directory.by_pk(unit.conn, pk) if pk is not None else None
        size = claim_batch_size(link.kind, link.settings) if link else 1
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            _queue_batch(unit, chunk, chunk[0] if len(chunk) == 1 else uuid.uuid4().hex)


def _queue_batch(unit: Unit, keys: list[str], batch: str) -> None:
    unit.conn.execute(S.update().where(S.c.tenant_id == unit.tenant_id, S.c.submission_key.in_(keys))
                      .values(status="batched", batch_key=batch))
    enqueue(unit, SEND, {"batch": batch}, dedupe_key=f"{SEND}:{batch}")


Member = tuple[str, dict[str, Any]]  # (the claim's submission key, the Claim)


def _members(reader: Reader, batch: str) -> tuple[list[Member], list[str], int | None]:
    """The batch's claims still waiting to go, the keys superseded since, and its connection."""
    rows = reader.conn.execute(sa.select(S.c.submission_key, S.c.claim_id, S.c.connection_pk).where(
        S.c.tenant_id == reader.tenant_id, S.c.batch_key == batch, S.c.status == "batched").order_by(S.c.pk)).all()
    versions = reader.current_many([("Claim", r.claim_id) for r in rows])
    members, stale = [], []
    for r in rows:
        v = versions.get(("Claim", r.claim_id))
        claim = orjson.loads(v.content) if v and not v.deleted and v.content else None
        if claim is None or submission_key(claim) != r.submission_key:
            stale.append(r.submission_key)
        else:
            members.append((r.submission_key, claim))
    return members, stale, (rows[0].connection_pk if rows else None)


def run_send(ts: TenantStore, payload: dict[str, Any]) -> None:
    """``send-claim-batch``: send one batch once; no transaction is open while the payer is called."""
    batch = payload["batch"]
    with ts.reading() as reader:
        members, stale, connection = _members(reader, batch)
        link = directory.by_pk(reader.conn, connection) if connection is not None else None
        if link is None and members:
            link = directory.for_insurer(reader.conn, ts.tenant_id, members[0][1].get("insurer"))
        pkgs = claim_packages(reader, [claim for _, claim in members]) if link is not None else []
    if stale:
        with ts.unit() as unit:
            unit.conn.execute(S.update().where(S.c.tenant_id == ts.tenant_id, S.c.submission_key.in_(stale))
                              .values(status="superseded"))
    if not members:
        return
    if link is None:
        with ts.unit() as unit:
            for key, claim in members:
                _rejected(unit, claim, key, {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "error", "code": "not-found",
                    "diagnostics": "no payer connection for the claim's insurer"}]}, source="no payer connection")
        return
    try:
        receipt = _send(ts, link, pkgs, batch)
    except TransientPayerError:
        raise  # the outbox retries with backoff, same batch and key
    except PayerRejection as rejection:
        with ts.unit() as unit:
            if len(members) > 1:
                for key, _claim in members:  # find the culprit: each claim on its own
                    _queue_batch(unit, [key], key)
            else:
                key, claim = members[0]
                _rejected(unit, claim, key, rejection.outcome, source="payer")
        return
    with ts.unit() as unit:
        _record(unit, batch, members, receipt)


def _send(ts: TenantStore, link: directory.PayerLink, pkgs: list[ClaimPackage], batch: str) -> Receipt:
    async def send(adapter: PayerAdapter) -> Receipt:
        found = await adapter.find_submission(batch)
        return found or await adapter.submit_claims(pkgs, idempotency_key=batch)

    return call_payer(ts, link, "claims", send)


def _record(unit: Unit, batch: str, members: list[Member], receipt: Receipt) -> None:
    """The receipt on every Claim of the batch, and the batch's submission rows ``submitted``."""
    controls = receipt.control_numbers or {}
    st = controls.get("ST")
    all_sets = ",".join(st) if isinstance(st, list) else st
    group = str(int(controls["GS"])) if str(controls.get("GS", "")).isdigit() else controls.get("GS")
    by_sets: dict[str | None, list[str]] = {}
    answer = receipt.synchronous_response if len(members) == 1 else None

    def recording(key: str) -> Callable[[dict[str, Any]], bool]:
        def record(current: dict[str, Any]) -> bool:
            if submission_key(current) != key:
                return False  # superseded since the batch was formed: not this claim's receipt
            advance(current, "submitted", unit.now)
            _record_receipt(current, receipt, key)
            if answer is not None:
                for code in posting.answer_states(answer, current):
                    advance(current, code, unit.now)
            return True
        return record

    # every claim of the batch in one write round trip (a member named twice is not a batch)
    recorded = unit.modify_many("Claim", {claim["id"]: recording(key) for key, claim in members})
    for key, claim in members:
        if recorded.get(claim["id"]) is None:
            continue
        by_sets.setdefault(receipt.claim_sets.get(patient_control_number(claim) or claim["id"]) or all_sets,
                           []).append(key)
        if answer is not None:
            posting.post_claim_response(unit, claim, answer, source=f"submit:{key}")
            if answer.get("outcome") == "queued":  # pended: ask the payer again later
                inquiry.queue_inquiry(unit, claim["id"], 1)
    for sets, keys in by_sets.items():
        unit.conn.execute(S.update().where(S.c.tenant_id == unit.tenant_id, S.c.submission_key.in_(keys)).values(
            status="submitted", file_name=receipt.file_name, submitted_at=unit.now, group_control=group,
            set_controls=sets, submission_id=receipt.submission_id[:200],
            batch_trace=_batch_trace(receipt, sets)))


def _batch_trace(receipt: Receipt, sets: str | None) -> str:
    """What the payer's acknowledgment will call the batch these claims went in: the BHT03 of
    their 837 transaction set, else (payer APIs) the submission's id at the payer."""
    isa = str((receipt.control_numbers or {}).get("ISA", ""))
    if isa.isdigit() and sets and sets.isdigit():
        return batch_trace(isa, sets)
    return receipt.submission_id[:50]


def _rejected(unit: Unit, claim: dict[str, Any], key: str, outcome: dict[str, Any], *, source: str) -> None:
    put(unit, rejection_response(claim, outcome, unit.now, source=source))
    move(unit, claim["id"], "rejected")
    unit.conn.execute(S.update().where(S.c.tenant_id == unit.tenant_id, S.c.submission_key == key)
                      .values(status="rejected"))
    biller_task(unit, claim, "claim-rejected", "Claim rejected", "The claim was not accepted for submission: "
                "correct it and generate a new claim.", issues_text(outcome), unit.now, key=f"{claim['id']}:{key}")


def submissions_of(unit: Unit, claim_id: str) -> list[Any]:
    return unit.conn.execute(sa.select(S).where(S.c.tenant_id == unit.tenant_id, S.c.claim_id == claim_id)).all()
