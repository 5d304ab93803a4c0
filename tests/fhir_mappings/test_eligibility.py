from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from fhir.resources.R4B.coverageeligibilityrequest import CoverageEligibilityRequest

from fhir_mappings import build_eligibility_request

COVERAGE = {"resourceType": "Coverage", "id": "cov-1", "status": "active",
            "beneficiary": {"reference": "Patient/pat-1"}, "payor": [{"reference": "Organization/org-payer"}]}
PATIENT = {"resourceType": "Patient", "id": "pat-1"}


@pytest.mark.parametrize("discipline,code", [("OT", "AD"), ("PT", "PT"), ("SLP", "AF"), ("ot", "AD")])
def test_service_type_per_discipline(discipline: str, code: str) -> None:
    req = build_eligibility_request(
        COVERAGE, PATIENT, request_id="er-1", created=datetime(2025, 1, 10, 9, tzinfo=timezone.utc),
        serviced_date=date(2025, 1, 14), discipline=discipline,
        provider_ref={"reference": "Organization/org-clinic"})
    CoverageEligibilityRequest.model_validate(req)
    category = req["item"][0]["category"]["coding"][0]
    assert category["system"] == "https://x12.org/codes/service-type-codes" and category["code"] == code
    assert req["purpose"] == ["benefits"] and req["servicedDate"] == "2025-01-14"
    assert req["insurer"] == {"reference": "Organization/org-payer"}
    assert req["insurance"] == [{"focal": True, "coverage": {"reference": "Coverage/cov-1"}}]


def test_unknown_discipline_and_naive_time_are_refused() -> None:
    kwargs = dict(request_id="er-1", serviced_date=date(2025, 1, 14), provider_ref={"reference": "Organization/o"})
    with pytest.raises(ValueError):
        build_eligibility_request(COVERAGE, PATIENT, created=datetime(2025, 1, 10, tzinfo=timezone.utc),
                                  discipline="RT", **kwargs)
    with pytest.raises(ValueError):
        build_eligibility_request(COVERAGE, PATIENT, created=datetime(2025, 1, 10), discipline="OT", **kwargs)
