"""Documentation deadlines and thresholds seen ahead of time, and the edits that hold a claim
once they are missed (Medicare profile)."""
from __future__ import annotations

from tests.fhir_mappings.helpers import issues_for, lines, run
from tests.fhir_mappings.mapping_builders import Block, care_plan, eob, make_encounter_bundle

from fhir_mappings import ClaimInputs, get_profile, outcome_has_errors
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.deadlines import KX_APPROACHING, PROGRESS, RECERT, REVIEW, upcoming
from fhir_mappings.plan import plan_billing


def due(bundle: dict, claim_id: str = "claim-1") -> list:
    inputs = ClaimInputs.from_resources(bundle)
    charges = ChargeMaster.of_inputs(inputs)
    plan = plan_billing(inputs, get_profile("medicare"), charges, claim_id=claim_id)
    return upcoming(inputs, plan, charges, claim_id)


def visits(n: int) -> list[dict]:
    """``n`` earlier OT treatment days from 2025-01-02 (small allowed amounts)."""
    return [eob(f"eob-{d}", f"2025-01-{d:02d}", "97110", "GO", 30.0) for d in range(2, 2 + n)]


def test_progress_report_item_at_treatment_day_eight_with_a_stable_key() -> None:
    plans = [care_plan("cp-ot", "OT", "2025-01-02", "2025-03-31")]
    at7 = due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=visits(6)))
    assert PROGRESS not in [u.code for u in at7]
    at8 = [u for u in due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=visits(7)))
           if u.code == PROGRESS]
    at9 = [u for u in due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=visits(8)))
           if u.code == PROGRESS]
    assert len(at8) == 1 and "Treatment day 8" in at8[0].text and at8[0].care_plan.id == "cp-ot"
    assert at9[0].key == at8[0].key == "OT:2025-01-02"  # same due point: one Task


def test_recertification_item_fourteen_days_before_the_certification_ends() -> None:
    near = [care_plan("cp-ot", "OT", "2025-01-02", "2025-01-28")]  # ends 14 days after the visit (01-14)
    far = [care_plan("cp-ot", "OT", "2025-01-02", "2025-01-29")]
    [item] = [u for u in due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=near)) if u.code == RECERT]
    assert str(item.due) == "2025-01-28" and item.key == "OT:2025-01-28"
    assert RECERT not in [u.code for u in due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=far))]
    # Without an end the 90-day limit is the end: 2024-10-24 + 89 days = 2025-01-21.
    open_plan = [care_plan("cp-ot", "OT", "2024-10-24", None)]
    [item] = [u for u in due(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=open_plan))
              if u.code == RECERT]
    assert str(item.due) == "2025-01-21"


def test_kx_crossed_mid_year_approaching_item_once_and_kx_from_the_crossing_line() -> None:
    # 2025 OT threshold $2,410; 80 % is $1,928. $1,900 before: this visit crosses 80 %, not the threshold.
    approaching = make_encounter_bundle(blocks=[Block("97110", 0, 30)], extra=[eob("eob-1", "2025-01-06", "97530", "GO", 1900.0)])
    items = [u for u in due(approaching) if u.code == KX_APPROACHING]
    assert len(items) == 1 and items[0].key == "2025:OT" and items[0].care_plan is None
    claim, _, _ = run(approaching)
    assert all("KX" not in mods for _, mods, _ in lines(claim))
    # Later in the year the threshold is crossed within a visit: KX from the crossing line on,
    # and the approaching item keeps its key (the caller opens it once per patient/year/bucket).
    history = [eob("eob-1", "2025-01-06", "97530", "GO", 1200.0), eob("eob-2", "2025-01-08", "97110", "GO", 1160.0)]
    crossing = make_encounter_bundle(blocks=[Block("97110", 0, 15), Block("97530", 15, 15)], extra=history)
    claim, _, ids = run(crossing)
    assert lines(claim) == [("97110", ("GO",), 1), ("97530", ("GO", "KX"), 1)] and "THER-KX-APPLIED" in ids
    assert [u.key for u in due(crossing) if u.code == KX_APPROACHING] == ["2025:OT"]
    # PT spending does not count toward OT.
    pt = make_encounter_bundle(blocks=[Block("97110", 0, 30)], extra=[eob("eob-1", "2025-01-06", "97110", "GP", 2000.0)])
    assert [u.key for u in due(pt) if u.code == KX_APPROACHING] == ["2025:PT-SLP"]


def test_medical_review_threshold_passed_is_an_item() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 30)], extra=[eob("eob-1", "2025-01-06", "97530", "GO", 3000.0)])
    assert [u.key for u in due(bundle) if u.code == REVIEW] == ["2025:OT"]


def test_a_year_without_a_kx_threshold_is_an_error_naming_the_data_to_add() -> None:
    plans = [care_plan("cp-ot", "OT", "2027-01-04", "2027-03-31")]
    bundle = make_encounter_bundle(day="2027-01-14", blocks=[Block("97110", 0, 30)], care_plans=plans)
    _, outcome, ids = run(bundle)
    [issue] = issues_for(outcome, "THER-KX-THRESHOLD-UNKNOWN")
    assert issue["severity"] == "error" and outcome_has_errors(outcome)
    assert '"2027"' in issue["details"]["text"] and "kx_thresholds.json" in issue["details"]["text"]
    assert "OT and PT-SLP" in issue["details"]["text"]


def test_a_visit_past_the_progress_report_deadline_is_held() -> None:
    plans = [care_plan("cp-ot", "OT", "2025-01-02", "2025-03-31")]
    _, outcome, _ = run(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=visits(10)))
    [issue] = issues_for(outcome, "THER-POC-PROGRESS-DUE")
    assert issue["severity"] == "error" and outcome_has_errors(outcome)


def test_delayed_certification_is_flagged_with_what_to_attach() -> None:
    late = care_plan("cp-ot", "OT", "2025-01-02", "2025-03-31") | {"created": "2025-02-05"}
    _, outcome, ids = run(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=[late]))
    [issue] = issues_for(outcome, "THER-POC-DELAYED-CERT")
    assert issue["severity"] == "warning" and "34 days" in issue["details"]["text"]
    assert "delayed certification statement" in issue["details"]["text"]
    timely = care_plan("cp-ot", "OT", "2025-01-02", "2025-03-31") | {"created": "2025-02-01"}
    assert "THER-POC-DELAYED-CERT" not in run(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=[timely]))[2]
    # Other payers do not ask for it.
    assert "THER-POC-DELAYED-CERT" not in run(make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=[late]),
                                              profile="commercial")[2]


def test_offline_claim_command_holds_2027_and_flags_delayed_certification(tmp_path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from app.cli import claim as claim_cli

    app = typer.Typer()
    claim_cli.register(app)
    late = care_plan("cp-ot", "OT", "2027-01-04", "2027-03-31") | {"created": "2027-02-10"}
    path = tmp_path / "visit.json"
    path.write_text(json.dumps(make_encounter_bundle(day="2027-02-12", blocks=[Block("97110", 0, 30)], care_plans=[late])))
    result = CliRunner().invoke(app, ["claim", str(path)])
    assert result.exit_code == 1  # held
    outcome = json.loads(result.stdout)["entry"][1]["resource"]
    found = {i["details"]["coding"][0]["code"]: i["severity"] for i in outcome["issue"] if i.get("details")}
    assert found["THER-KX-THRESHOLD-UNKNOWN"] == "error" and found["THER-POC-DELAYED-CERT"] == "warning"
    listed = CliRunner().invoke(app, ["rules", "list", "--json"])
    rules = {r["id"]: r for r in json.loads(listed.stdout)["rules"]}
    assert rules["THER-POC-DELAYED-CERT"]["effective"] == "2008-01-01" and "MBPM" in rules["THER-POC-DELAYED-CERT"]["source"]
