"""OperationOutcome construction: one issue per rule finding, rule id in ``details.coding``."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fhir_mappings.vocabulary as vocabulary


@dataclass(frozen=True)
class Finding:
    """What a check found: the element concerned and a sentence for a biller (what and how to fix)."""

    rule_id: str
    expression: str
    text: str


def issue(severity: str, code: str, rule_id: str, summary: str, text: str, expressions: Iterable[str]) -> dict[str, Any]:
    return {
        "severity": severity,
        "code": code,
        "details": {"coding": [{"system": vocabulary.SCRUB_RULE, "code": rule_id, "display": summary}], "text": text},
        "expression": list(expressions),
    }


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome; a clean run carries one informational issue (R4 needs at least one)."""
    if not issues:
        issues = [{
            "severity": "information",
            "code": "informational",
            "details": {"text": "No problems found; the claim is ready to send."},
        }]
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome_has_errors(outcome: dict[str, Any]) -> bool:
    """True when any issue is ``error`` or ``fatal`` — such a claim is held (draft), not sent."""
    return any(i.get("severity") in ("error", "fatal") for i in outcome.get("issue", ()))


def rule_ids(outcome: dict[str, Any]) -> list[str]:
    """Rule ids of the issues, in order (issues without a rule coding are skipped)."""
    out = []
    for i in outcome.get("issue", ()):
        for c in i.get("details", {}).get("coding", ()):
            if c.get("system") == vocabulary.SCRUB_RULE:
                out.append(c["code"])
    return out
