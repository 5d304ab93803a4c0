"""Builders for test resources."""
from __future__ import annotations

from typing import Any


def patient(family: str = "Rivera", given: str = "Ana", mrn: str | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": [given]}]}
    if mrn:
        r["identifier"] = [{"system": "urn:mrn", "value": mrn}]
    r.update(extra)
    return r


def encounter(patient_ref: str, start: str = "2024-03-01T10:00:00Z", status: str = "finished", **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Encounter", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient_ref}, "period": {"start": start},
    }
    r.update(extra)
    return r
