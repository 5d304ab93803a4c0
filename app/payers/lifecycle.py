"""Identifier systems the payer side reads on claims and payers."""
from __future__ import annotations

from typing import Any

PCN_SYSTEM = "https://therabridge.dev/fhir/sid/patient-control-number"
PAYER_ID_SYSTEM = "https://therabridge.dev/fhir/sid/payer-id"
TASK_CODE_SYSTEM = "https://therabridge.dev/fhir/CodeSystem/task-code"


def patient_control_number(claim: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in claim.get("identifier") or [] if i.get("system") == PCN_SYSTEM), None)
