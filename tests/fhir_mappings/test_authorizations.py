"""Authorization edits: the period, the visits and units the earlier claims under it used (voids
and corrections counted once), and the payer's or the 271's requirement of one."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.fhir_mappings.helpers import issues_for, run
from tests.fhir_mappings.mapping_builders import Block, care_plan, make_encounter_bundle, preauth

from fhir_mappings import authorizations
from fhir_mappings.tables import CPT_SYSTEM
from fhir_mappings.vocabulary import CLAIM_FREQUENCY, THERAPY_DISCIPLINE

THERABRIDGE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "therabridge"
APPROVED = {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                     "code": "submitted"}]}}
RELATED = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"


def limited(start: str = "2025-01-01", end: str = "2025-03-31", *, visits: int | None = None,
            units: tuple[str, int] | None = None) -> dict[str, Any]:
    auth = preauth("auth-1", start, end)
    if visits is not None:
        auth.setdefault("addItem", []).append({
            "productOrService": {"coding": [{"system": THERAPY_DISCIPLINE, "code": "OT"}]},
            "quantity": {"value": visits}, "adjudication": [APPROVED]})
    if units is not None:
        auth.setdefault("addItem", []).append({
            "productOrService": {"coding": [{"system": CPT_SYSTEM, "code": units[0]}]},
            "quantity": {"value": units[1]}, "adjudication": [APPROVED]})
    return auth


def earlier_claim(auth: dict[str, Any], day: str, claim_id: str, blocks: list[Block] | None = None) -> dict[str, Any]:
    """A claim generated for an earlier visit (its own Encounter) under ``auth``."""
    claim, _, _ = run(make_encounter_bundle(day=day, blocks=blocks, extra=[auth],
                                            care_plans=[care_plan("cp-ot", "OT", "2025-01-01", None)]),
                      claim_id=claim_id)
    for item in claim["item"]:
        item["encounter"] = [{"reference": f"Encounter/enc-{claim_id}"}]
    assert claim["insurance"][0]["preAuthRef"] == [auth["preAuthRef"]]
    return claim


def visit(auth: dict[str, Any], *earlier: dict[str, Any], day: str = "2025-01-14",
          blocks: list[Block] | None = None) -> dict[str, Any]:
    return make_encounter_bundle(day=day, blocks=blocks, extra=[auth, *earlier],
                                 care_plans=[care_plan("cp-ot", "OT", "2025-01-01", None)])


def void_of(claim: dict[str, Any], void_id: str) -> dict[str, Any]:
    return {**claim, "id": void_id, "extension": [{"url": CLAIM_FREQUENCY, "valueCode": "8"}],
            "related": [{"claim": {"reference": f"Claim/{claim['id']}"},
                         "relationship": {"coding": [{"system": RELATED, "code": "prior"}]}}]}


def test_a_visit_within_the_visits_left_carries_the_authorization() -> None:
    auth = limited(visits=2)
    claim, _, ids = run(visit(auth, earlier_claim(auth, "2025-01-07", "c-0")))
    assert "AUTH-EXHAUSTED" not in ids and "AUTH-PERIOD" not in ids
    assert claim["insurance"][0]["preAuthRef"] == ["AUTH-7788"]


def test_the_visit_past_the_authorized_visits_is_held_naming_used_and_authorized() -> None:
    auth = limited(visits=1)
    _, outcome, ids = run(visit(auth, earlier_claim(auth, "2025-01-07", "c-0")))
    assert "AUTH-EXHAUSTED" in ids
    text = issues_for(outcome, "AUTH-EXHAUSTED")[0]["details"]["text"]
    assert "allows 1 visit of OT" in text and "1 used" in text
    assert issues_for(outcome, "AUTH-EXHAUSTED")[0]["severity"] == "error"


def test_units_of_a_code_are_counted_across_claims() -> None:
    auth = limited(units=("97530", 3))
    first = earlier_claim(auth, "2025-01-07", "c-0")  # 97530 x 2
    _, outcome, ids = run(visit(auth, first))  # 2 more would make 4 of 3
    assert "AUTH-EXHAUSTED" in ids
    assert "allows 3 units of 97530" in issues_for(outcome, "AUTH-EXHAUSTED")[0]["details"]["text"]
    _, _, ids = run(visit(auth, first, blocks=[Block("97165", 0, 45)]))  # no 97530 today
    assert "AUTH-EXHAUSTED" not in ids


def test_a_voided_claim_gives_its_visit_back() -> None:
    auth = limited(visits=1)
    first = earlier_claim(auth, "2025-01-07", "c-0")
    _, _, ids = run(visit(auth, first, void_of(first, "c-0-void")))
    assert "AUTH-EXHAUSTED" not in ids
    cancelled = {**first, "status": "cancelled"}
    _, _, ids = run(visit(auth, cancelled))
    assert "AUTH-EXHAUSTED" not in ids


def test_a_corrected_claim_counts_once() -> None:
    auth = limited(visits=2)
    first = earlier_claim(auth, "2025-01-07", "c-0")
    correction = {**first, "id": "c-0-fix",
                  "related": [{"claim": {"reference": "Claim/c-0"},
                               "relationship": {"coding": [{"system": RELATED, "code": "prior"}]}}]}
    used = authorizations.usage(auth, [first, correction])
    assert used.claims == ["c-0-fix"] and used.used == {0: 1}
    _, _, ids = run(visit(auth, first, correction))
    assert "AUTH-EXHAUSTED" not in ids


def test_a_visit_outside_the_authorized_period_is_held() -> None:
    auth = limited("2024-10-01", "2024-12-31", visits=20)
    claim, outcome, ids = run(visit(auth))
    assert "AUTH-PERIOD" in ids
    assert "AUTH-7788 (2024-10-01 to 2024-12-31)" in issues_for(outcome, "AUTH-PERIOD")[0]["details"]["text"]
    assert "preAuthRef" not in claim["insurance"][0]


def test_the_eligibility_answer_requiring_authorization_holds_any_profile() -> None:
    answer = {"resourceType": "CoverageEligibilityResponse", "id": "elig-1", "status": "active",
              "purpose": ["benefits"], "patient": {"reference": "Patient/pat-1"}, "created": "2025-01-02",
              "request": {"reference": "CoverageEligibilityRequest/req-1"}, "outcome": "complete",
              "insurer": {"reference": "Organization/org-payer"},
              "insurance": [{"coverage": {"reference": "Coverage/cov-1"}, "inforce": True,
                             "item": [{"category": {"coding": [{"system": "https://x12.org/codes/service-type-codes",
                                                                "code": "AD"}]},
                                       "authorizationRequired": True}]}]}
    bundle = make_encounter_bundle(extra=[answer])
    _, _, ids = run(bundle)
    assert "PRIOR-AUTH-MISSING" in ids
    answer["insurance"][0]["item"][0]["authorizationRequired"] = False
    _, _, ids = run(make_encounter_bundle(extra=[answer]))
    assert "PRIOR-AUTH-MISSING" not in ids


def test_problems_of_an_authorization() -> None:
    bad = limited("2025-03-01", "2025-01-01", visits=0)
    del bad["preAuthRef"]
    where = [e for e, _ in authorizations.problems(bad)]
    assert where == ["ClaimResponse.preAuthRef", "ClaimResponse.preAuthPeriod", "ClaimResponse.addItem[0].quantity.value"]
    assert authorizations.problems(limited(visits=12, units=("97110", 8))) == []


def _cli(tmp_path: Path, bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "visit.json"
    path.write_text(json.dumps(bundle))
    done = subprocess.run([str(THERABRIDGE), "claim", str(path)], capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_cli_offline_holds_a_visit_outside_the_period_and_past_the_visits(tmp_path: Path) -> None:
    code, out = _cli(tmp_path, visit(limited("2024-10-01", "2024-12-31", visits=20)))
    assert code == 1
    assert "AUTH-PERIOD" in json.dumps(out["entry"][1]["resource"])
    auth = limited(visits=1)
    code, out = _cli(tmp_path, visit(auth, earlier_claim(auth, "2025-01-07", "c-0")))
    assert code == 1
    outcome = out["entry"][1]["resource"]
    assert [i["details"]["coding"][0]["code"] for i in outcome["issue"] if i["severity"] == "error"] == ["AUTH-EXHAUSTED"]
