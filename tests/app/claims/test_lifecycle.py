"""The claim lifecycle never moves back, whatever order the payer's answers are collected in."""
from __future__ import annotations

from datetime import datetime, timezone

from app.claims.lifecycle import advance, lifecycle
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE_HISTORY

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _claim(code: str) -> dict:
    claim: dict = {"resourceType": "Claim", "id": "c1"}
    advance(claim, code, NOW, force=True)
    return claim


def test_payer_rejection_after_clearinghouse_acceptance_moves_to_rejected() -> None:
    claim = _claim("accepted")  # the clearinghouse's 277CA
    assert advance(claim, "rejected", NOW)  # the payer's 277CA
    assert lifecycle(claim) == "rejected"


def test_late_acknowledgments_do_not_move_a_claim_back() -> None:
    claim = _claim("paid")
    for earlier in ("submitted", "acknowledged", "accepted", "rejected"):
        assert not advance(claim, earlier, NOW)
    assert lifecycle(claim) == "paid"
    history = next(e for e in claim["extension"] if e["url"] == CLAIM_LIFECYCLE_HISTORY)
    assert [e["url"] for e in history["extension"]] == ["paid", "submitted", "acknowledged", "accepted", "rejected"]


def test_acceptance_after_rejection_keeps_the_rejection() -> None:
    claim = _claim("rejected")
    assert not advance(claim, "accepted", NOW)
    assert lifecycle(claim) == "rejected"
