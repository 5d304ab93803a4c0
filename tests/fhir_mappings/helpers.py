"""Helpers shared by the mapping tests: run the pipeline and look at the result."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.operationoutcome import OperationOutcome

from fhir_mappings import ClaimInputs, generate
from fhir_mappings.outcome import rule_ids

CREATED = datetime(2025, 1, 20, 15, 0, tzinfo=timezone.utc)


def run(bundle: dict[str, Any], profile: str | None = None, claim_id: str = "claim-1",
        created: datetime = CREATED) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Generate, prove both outputs valid FHIR R4 (fhir.resources R4B), return (claim, outcome, rule ids)."""
    inputs = ClaimInputs.from_resources(bundle)
    claim, outcome = generate(inputs, profile=profile, claim_id=claim_id, created=created)
    Claim.model_validate(claim)
    OperationOutcome.model_validate(outcome)
    return claim, outcome, rule_ids(outcome)


def lines(claim: dict[str, Any]) -> list[tuple[str, tuple[str, ...], int]]:
    """(code, modifiers, units) per claim item, for compact assertions."""
    return [
        (it["productOrService"]["coding"][0]["code"],
         tuple(m["coding"][0]["code"] for m in it.get("modifier", ())),
         it["quantity"]["value"])
        for it in claim.get("item", ())
    ]


def issues_for(outcome: dict[str, Any], rule_id: str) -> list[dict[str, Any]]:
    return [i for i in outcome["issue"] if i.get("details", {}).get("coding", [{}])[0].get("code") == rule_id]
