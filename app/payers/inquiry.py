"""Claim status follow-up for a pended claim: a payer that answered ``queued`` (a Da Vinci PAS
style pend) is asked again later (``$inquire``), with a growing delay, until it decides."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from app import directory
from app.claims.lifecycle import advance, lifecycle, rank
from app.fhir.store import TenantStore, Unit
from app.jobs import enqueue
from app.payers import posting
from app.payers.calls import call_payer
from app.payers.packages import claim_package
from payer_adapters.errors import PayerRejection

log = logging.getLogger("therabridge.payers")

KIND = "inquire-claim"
DELAY = timedelta(seconds=5)


def queue_inquiry(unit: Unit, claim_id: str, attempt: int) -> None:
    dedupe = f"{KIND}:{claim_id}:{attempt}"
    delay = DELAY * min(2 ** (attempt - 1), 720)
    enqueue(unit, KIND, {"claim": claim_id, "attempt": attempt}, dedupe_key=dedupe, run_after=unit.now + delay)


def run_inquire(ts: TenantStore, payload: dict[str, Any]) -> None:
    """Ask the payer about a pended claim; pended again → ask later (a new job, growing delay)."""
    claim_id, attempt = payload["claim"], int(payload.get("attempt", 1))
    with ts.reading() as reader:
        current = reader.current("Claim", claim_id)
        if current is None or current.deleted:
            return
        claim = current.resource()
        if rank(lifecycle(claim)) > rank("accepted"):
            return
        link = directory.for_insurer(reader.conn, ts.tenant_id, claim.get("insurer"))
        if link is None:
            return
        pkg = claim_package(reader, claim)
    try:
        response = call_payer(ts, link, "status", lambda adapter: adapter.inquire({"claim": claim, "resources": pkg.resources}))
    except PayerRejection:
        log.warning("claim inquiry refused by the payer (attempt %s)", attempt)
        response = None
    with ts.unit() as unit:
        if response is None or response.get("outcome") == "queued":
            if attempt < 12:
                queue_inquiry(unit, claim_id, attempt + 1)
            return

        def settle(current: dict[str, Any]) -> bool:  # the claim as it is now, not as it was before the call
            if rank(lifecycle(current)) > rank("accepted"):
                return False
            for code in posting.answer_states(response, current):
                advance(current, code, unit.now)
            return True

        if unit.modify("Claim", claim_id, settle) is not None:
            posting.post_claim_response(unit, claim, response, source=f"inquire:{attempt}")


