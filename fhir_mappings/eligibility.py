"""CoverageEligibilityRequest for a therapy benefit (maps to an X12 270 with EQ = AD/PT/AF)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir_mappings.tables import disciplines, service_type_system


def build_eligibility_request(
    coverage: dict[str, Any],
    patient: dict[str, Any],
    *,
    request_id: str,
    created: datetime,
    serviced_date: date,
    discipline: str,
    provider_ref: dict[str, Any],
    insurer_ref: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``benefits`` CoverageEligibilityRequest for one discipline's outpatient therapy benefit.

    The item category is the X12 service type code (AD occupational therapy, PT physical therapy,
    AF speech therapy: EQ01 of the 270, 005010X279A1) in system
    ``https://x12.org/codes/service-type-codes``.
    ``insurer_ref`` defaults to the Coverage's first payor. Raises ValueError for an unknown
    discipline or a naive ``created``.
    """
    disc = disciplines().get(discipline.upper())
    if disc is None:
        raise ValueError(f"unknown discipline {discipline!r}; use one of {', '.join(disciplines())}")
    if created.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    insurer = insurer_ref or (coverage.get("payor") or [None])[0]
    if not insurer:
        raise ValueError("the Coverage has no payor; pass insurer_ref")
    return {
        "resourceType": "CoverageEligibilityRequest",
        "id": request_id,
        "status": "active",
        "purpose": ["benefits"],
        "patient": {"reference": f"Patient/{patient['id']}"},
        "servicedDate": serviced_date.isoformat(),
        "created": created.isoformat(),
        "provider": dict(provider_ref),
        "insurer": dict(insurer),
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage['id']}"}}],
        "item": [{
            "category": {"coding": [{"system": service_type_system(), "code": disc.service_type,
                                     "display": disc.label}]},
        }],
    }
