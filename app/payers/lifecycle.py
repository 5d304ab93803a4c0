"""Identifier systems the payer side reads on claims and payers."""
from __future__ import annotations

from typing import Any

from fhir_mappings import identifiers

PCN_SYSTEM = "https://therabridge.dev/fhir/sid/patient-control-number"
PAYER_ID_SYSTEM = "https://therabridge.dev/fhir/sid/payer-id"
TASK_CODE_SYSTEM = "https://therabridge.dev/fhir/CodeSystem/task-code"


def patient_control_number(claim: dict[str, Any]) -> str | None:
    """The claim's CLM01 as the identifier resolver reads it: our system, else a typed or the
    claim's own identifier that fits (fhir_mappings/PROFILE.md, Identifiers)."""
    return identifiers.patient_control_number(claim)
