"""The sandbox payer's prior-authorization rules (its data file's ``prior_authorization``):
pended members, unknown members, and the period and number an approval carries."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from payer_adapters.sandbox import Engine, load_config
from payer_adapters.sandbox.prior_auth import decide

NOW = datetime(2026, 10, 30, 12, 0, tzinfo=timezone.utc)
DISCIPLINE = "https://therabridge.dev/fhir/CodeSystem/therapy-discipline"


def _request(member: str, visits: int = 6) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    claim = {"resourceType": "Claim", "id": "req-1", "use": "preauthorization", "status": "active",
             "patient": {"reference": "Patient/p"}, "insurance": [{"sequence": 1, "focal": True,
                                                                    "coverage": {"reference": "Coverage/c"}}],
             "item": [{"sequence": 1, "productOrService": {"coding": [{"system": DISCIPLINE, "code": "PT"}]},
                       "quantity": {"value": visits}, "servicedDate": "2026-11-10"}]}
    return claim, [{"resourceType": "Coverage", "id": "c", "subscriberId": member}]


def test_members_listed_for_review_are_pended_and_unknown_members_denied() -> None:
    engine = Engine(load_config())
    pended = decide(engine, *_request("ACMLOWVIS001"), key="k1", now=NOW)
    assert pended["outcome"] == "queued" and "preAuthRef" not in pended
    unknown = decide(engine, *_request("NOSUCHMEMBER"), key="k2", now=NOW)
    assert unknown["outcome"] == "complete" and "preAuthRef" not in unknown and unknown["error"]


def test_an_approval_runs_from_the_first_requested_day_and_keeps_its_number_per_key() -> None:
    engine = Engine(load_config())
    first = decide(engine, *_request("ACM987654321"), key="k3", now=NOW)
    assert first["outcome"] == "complete"
    assert first["preAuthPeriod"] == {"start": "2026-11-10", "end": "2027-01-08"}  # Acme: 60 days
    assert first["addItem"][0]["quantity"] == {"value": 6}
    assert decide(engine, *_request("ACM987654321"), key="k3", now=NOW)["preAuthRef"] == first["preAuthRef"]
    assert decide(engine, *_request("ACM987654321"), key="k4", now=NOW)["preAuthRef"] != first["preAuthRef"]
