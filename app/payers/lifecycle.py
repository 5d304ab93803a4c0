"""The Claim lifecycle: a code on the Claim plus the instant each state was reached.

Codes and their order live in ``data/lifecycle.json``. Answers arrive in any order (a mailbox
lists files alphabetically, so an 835 can be read before its 999), so a state never moves a
claim back to a lower rank; the history still records when each answer came.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.claims.workflow import LIFECYCLE_URL, lifecycle
from app.fhir.dates import instant

HISTORY_URL = "https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle-history"
SUBMISSION_KEY = "https://therabridge.dev/fhir/sid/submission-key"
PCN_SYSTEM = "https://therabridge.dev/fhir/sid/patient-control-number"
PAYER_ID_SYSTEM = "https://therabridge.dev/fhir/sid/payer-id"
TASK_CODE_SYSTEM = "https://therabridge.dev/fhir/CodeSystem/task-code"


@lru_cache(maxsize=1)
def codes() -> dict[str, dict[str, Any]]:
    return json.loads((Path(__file__).parent / "data" / "lifecycle.json").read_text())["codes"]


def rank(code: str | None) -> int:
    return codes()[code]["rank"] if code in codes() else -1


def advance(claim: dict[str, Any], code: str, when: datetime, *, force: bool = False) -> bool:
    """Record ``code`` reached at ``when``; the current code changes only when it ranks higher
    (or ``force``). Returns whether the current code changed."""
    if code not in codes():
        raise ValueError(f"unknown lifecycle code {code!r}")
    exts = claim.setdefault("extension", [])
    history = next((e for e in exts if e.get("url") == HISTORY_URL), None)
    if history is None:
        history = {"url": HISTORY_URL, "extension": []}
        exts.append(history)
    if not any(e.get("url") == code for e in history["extension"]):
        history["extension"].append({"url": code, "valueInstant": instant(when)})
    current = lifecycle(claim)
    if not force and rank(code) <= rank(current):
        return False
    claim["extension"] = [e for e in exts if e.get("url") != LIFECYCLE_URL] + [{"url": LIFECYCLE_URL, "valueCode": code}]
    return True


def submission_key(claim: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in claim.get("identifier") or [] if i.get("system") == SUBMISSION_KEY), None)


def patient_control_number(claim: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in claim.get("identifier") or [] if i.get("system") == PCN_SYSTEM), None)


def lifecycle_rank_of(claim: dict[str, Any]) -> int:
    return rank(lifecycle(claim))
