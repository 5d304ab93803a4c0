"""Claim content and scrub findings for realistic visits (inputs built with mapping_builders)."""
from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

import pytest
from tests.fhir_mappings.helpers import issues_for, lines, run
from tests.fhir_mappings.mapping_builders import SOPT, Block, care_plan, eob, make_encounter_bundle, preauth

from fhir_mappings import ClaimInputs, InputError, generate, get_profile, outcome_has_errors, scrub
from fhir_mappings.claim import patient_control_number
from fhir_mappings.vocabulary import LINE_CONTROL_NUMBER, PATIENT_CONTROL_NUMBER


def test_medicare_ot_eval_and_treatment_is_clean_and_complete() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97165", 0, 45), Block("97530", 45, 30), Block("97535", 75, 10)])
    claim, outcome, ids = run(bundle)
    assert ids == []
    assert not outcome_has_errors(outcome)
    # 40 timed minutes -> 3 units: 2 of 97530 (30 min) and 1 of 97535 (10 min); the eval is one unit.
    assert lines(claim) == [("97165", ("GO",), 1), ("97530", ("GO",), 2), ("97535", ("GO",), 1)]
    assert claim["use"] == "claim" and claim["status"] == "active"
    assert claim["type"]["coding"][0]["code"] == "professional"
    assert claim["billablePeriod"] == {"start": "2025-01-14", "end": "2025-01-14"}
    assert claim["total"]["value"] == sum(i["net"]["value"] for i in claim["item"]) == 150 + 120 + 60
    assert [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim["diagnosis"]] == ["I69.351", "R27.8"]
    assert claim["diagnosis"][0]["type"][0]["coding"][0]["code"] == "principal"
    roles = [(m["provider"]["reference"], m["role"]["coding"][0]["code"]) for m in claim["careTeam"]]
    assert roles == [("Practitioner/ot-1", "primary"), ("Practitioner/md-1", "referring")]
    assert claim["careTeam"][0]["qualification"]["coding"][0]["code"] == "225X00000X"
    pcn = claim["identifier"][0]
    assert pcn["system"] == PATIENT_CONTROL_NUMBER and re.fullmatch(r"[A-Z0-9]{1,17}", pcn["value"])
    assert pcn["value"] == patient_control_number("claim-1")
    controls = [i["extension"][0] for i in claim["item"]]
    assert all(c["url"] == LINE_CONTROL_NUMBER for c in controls)
    assert len({c["valueString"] for c in controls}) == 3
    assert {i["locationCodeableConcept"]["coding"][0]["code"] for i in claim["item"]} == {"11"}
    assert all(i["servicedDate"] == "2025-01-14" for i in claim["item"])
    assert claim["insurer"]["identifier"]["value"] == "00952"


def test_ota_furnished_units_carry_co_with_go() -> None:
    # OT 15 min, OTA 23 min of 97530 -> 38 min = 3 units: the OT's full unit without CO, the OTA's two with CO.
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 15), Block("97530", 15, 23, performer="ota-1")])
    claim, outcome, ids = run(bundle)
    assert lines(claim) == [("97530", ("GO",), 1), ("97530", ("GO", "CO"), 2)]
    assert ids == []
    assistant_line = claim["item"][1]
    team = {m["sequence"]: m for m in claim["careTeam"]}
    assert [team[s]["role"]["coding"][0]["code"] for s in assistant_line["careTeamSequence"]] == ["primary", "referring", "assist"]


def test_assistant_within_de_minimis_gets_no_co() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 14), Block("97110", 14, 1, performer="ota-1")])
    claim, _, _ = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 1)]


def test_commercial_does_not_need_kx_but_keeps_co() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 30, performer="ota-1")],
                                   coverage_type=(SOPT, "5"), payer_id="87726")
    claim, _, ids = run(bundle)
    assert lines(claim) == [("97530", ("GO", "CO"), 2)]
    assert "THER-KX-APPLIED" not in ids


def test_kx_added_from_the_line_that_passes_the_threshold() -> None:
    # 2025 OT threshold $2,410. Earlier visits: $2,360 allowed. 97110 adds ~$29 (2,389), 97530 ~$35 (2,424).
    history = [eob("eob-1", "2025-01-06", "97530", "GO", 1200.0), eob("eob-2", "2025-01-08", "97110", "GO", 1160.0)]
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 15), Block("97530", 15, 15)], extra=history)
    claim, outcome, ids = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 1), ("97530", ("GO", "KX"), 1)]
    assert "THER-KX-APPLIED" in ids and not outcome_has_errors(outcome)
    assert issues_for(outcome, "THER-KX-APPLIED")[0]["severity"] == "warning"


def test_pt_and_slp_share_a_bucket_ot_does_not() -> None:
    history = [eob("eob-1", "2025-01-06", "97110", "GP", 2400.0)]
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 30)], extra=history)
    claim, _, ids = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 2)]  # PT spending does not move the OT bucket
    assert "THER-KX-APPLIED" not in ids


def test_kx_without_current_certified_plan_is_an_error_and_not_added() -> None:
    history = [eob("eob-1", "2025-01-06", "97530", "GO", 2500.0)]
    plans = [care_plan("cp-ot", "OT", "2025-01-01", None, author=None)]
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 30)], extra=history, care_plans=plans)
    claim, outcome, ids = run(bundle)
    assert lines(claim) == [("97530", ("GO",), 2)]
    assert "THER-KX-NO-CERT" in ids and "THER-POC-CERTIFIER" in ids
    assert outcome_has_errors(outcome)


def test_date_outside_certified_interval_is_held() -> None:
    plans = [care_plan("cp-ot", "OT", "2024-10-01", "2024-12-29")]
    claim, outcome, ids = run(make_encounter_bundle(care_plans=plans))
    assert "THER-POC-DOS-OUTSIDE" in ids and "THER-POC-90-DAYS" in ids
    issue = issues_for(outcome, "THER-POC-DOS-OUTSIDE")[0]
    assert issue["severity"] == "error"
    assert issue["expression"][0].endswith(".resource.period")
    assert "recertified" in issue["details"]["text"]


def test_ninety_day_limit_counts_from_the_plan_start() -> None:
    ok = run(make_encounter_bundle(day="2025-03-31", care_plans=[care_plan("cp-ot", "OT", "2025-01-01", None)]))[2]
    late = run(make_encounter_bundle(day="2025-04-01", care_plans=[care_plan("cp-ot", "OT", "2025-01-01", None)]))[2]
    assert "THER-POC-90-DAYS" not in ok  # day 90 of the interval
    assert "THER-POC-90-DAYS" in late   # day 91


def test_chiropractor_cannot_certify_for_medicare() -> None:
    plans = [care_plan("cp-ot", "OT", "2025-01-01", None, author="dc-1")]
    _, _, ids = run(make_encounter_bundle(care_plans=plans))
    assert "THER-POC-CERTIFIER" in ids


def test_missing_plan_of_care_is_held_and_no_discipline_modifier() -> None:
    claim, outcome, ids = run(make_encounter_bundle(care_plans=[]))
    assert "THER-POC-MISSING" in ids and "THER-MOD-DISCIPLINE" in ids
    assert all(mods == () for _, mods, _ in lines(claim))


def test_ncci_pair_in_distinct_blocks_gets_59_on_column_two() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97140", 0, 15), Block("97530", 15, 30)])
    claim, outcome, ids = run(bundle)
    assert lines(claim) == [("97140", ("GO",), 1), ("97530", ("GO", "59"), 2)]
    assert ids == ["NCCI-PAIR-DISTINCT"] and not outcome_has_errors(outcome)
    assert claim["item"][1]["modifier"][1]["coding"][0]["system"] == "http://www.ama-assn.org/go/cpt"


def test_ncci_pair_overlapping_is_an_error_without_59() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97140", 0, 20), Block("97530", 10, 30)])
    claim, outcome, ids = run(bundle)
    assert ("97530", ("GO",), 2) in lines(claim)
    assert "NCCI-PAIR-OVERLAP" in ids and outcome_has_errors(outcome)


def test_ncci_pair_without_times_cannot_be_shown_distinct() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97140", 0, 15, minutes_extension=True), Block("97530", 15, 30)])
    _, outcome, ids = run(bundle)
    assert "NCCI-PAIR-TIMES-UNKNOWN" in ids


def test_minutes_extension_counts_like_a_period() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 33, minutes_extension=True), Block("97112", 33, 7)])
    claim, _, _ = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 2), ("97112", ("GO",), 1)]


def test_commercial_per_code_reports_the_unbilled_code() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 33), Block("97140", 33, 7)],
                                   coverage_type=(SOPT, "5"), payer_id="87726")
    claim, outcome, ids = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 2)]
    assert "THER-UNITS-ZERO" in ids
    assert issues_for(outcome, "THER-UNITS-ZERO")[0]["severity"] == "warning"
    medicare, _, _ = run(bundle, profile="medicare")
    assert lines(medicare) == [("97110", ("GO", "59"), 2), ("97140", ("GO",), 1)]


def test_payer_override_switches_a_commercial_payer_to_total_time() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 33), Block("97112", 33, 7)],
                                   coverage_type=(SOPT, "5"), payer_id="EXAMPLE-HIGHMARK")
    claim, _, ids = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 2), ("97112", ("GO",), 1)]
    assert "THER-UNITS-ZERO" not in ids


def test_medicare_leaves_97010_off_with_a_warning() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97010", 0, 10), Block("97110", 10, 30)])
    claim, outcome, ids = run(bundle)
    assert [c for c, _, _ in lines(claim)] == ["97110"]
    assert ids == ["MCR-BUNDLED-OMITTED"]
    commercial, _, _ = run(bundle, profile="commercial")
    assert "97010" in [c for c, _, _ in lines(commercial)]


def test_two_evaluations_same_discipline_same_day() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97165", 0, 30), Block("97166", 30, 30)])
    _, outcome, ids = run(bundle)
    assert "THER-EVAL-ONE-PER-DAY" in ids and outcome_has_errors(outcome)


def test_workers_comp_carries_accident_claim_number_and_authorization() -> None:
    bundle = make_encounter_bundle(
        blocks=[Block("97110", 0, 30), Block("97140", 30, 15)],
        coverage_type=("http://terminology.hl7.org/CodeSystem/v3-ActCode", "WCBPOL"),
        payer_id="WC123", payer_name="State Comp Fund",
        coverage_extra={
            "identifier": [{"system": "https://therabridge.dev/fhir/sid/property-casualty-claim-number", "value": "WC-2024-55821"}],
            "extension": [{"url": "https://therabridge.dev/fhir/StructureDefinition/accident-date", "valueDate": "2024-12-02"}],
        },
        extra=[preauth("auth-1", "2025-01-01", "2025-03-31")],
    )
    claim, outcome, ids = run(bundle)
    assert ids == []
    assert claim["accident"] == {"date": "2024-12-02", "type": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "WPA"}]}}
    assert claim["insurance"][0]["identifier"]["value"] == "WC-2024-55821"
    assert claim["supportingInfo"][0]["category"]["coding"][0]["code"] == "employmentimpacted"
    assert claim["supportingInfo"][0]["valueString"] == "WC-2024-55821"
    assert claim["insurance"][0]["preAuthRef"] == ["AUTH-7788"]
    assert lines(claim) == [("97110", ("GO",), 2), ("97140", ("GO",), 1)]  # per-code, no NCCI for WC


def test_workers_comp_without_authorization_or_claim_number_is_held() -> None:
    bundle = make_encounter_bundle(coverage_type=(SOPT, "95"), payer_id="WC123",
                                   extra=[preauth("auth-1", "2025-02-01", "2025-03-31")])
    claim, outcome, ids = run(bundle)
    assert "AUTH-PERIOD" in ids and "WC-ACCIDENT" in ids  # the authorization on file ends before the visit
    assert claim["accident"]["date"] == "2024-11-02"  # principal Condition onset as the injury date
    assert "preAuthRef" not in claim["insurance"][0]


def test_invalid_practitioner_npi_is_reported_on_the_care_team() -> None:
    bundle = make_encounter_bundle()
    for e in bundle["entry"]:
        if e["resource"]["id"] == "ot-1":
            e["resource"]["identifier"][0]["value"] = "1982736451"
    _, outcome, ids = run(bundle)
    assert ids == ["NPI-CHECK-DIGIT"]
    assert issues_for(outcome, "NPI-CHECK-DIGIT")[0]["expression"] == ["Claim.careTeam[0].provider.identifier"]


def test_more_than_twelve_diagnoses_keeps_the_first_twelve() -> None:
    conds = [{"resourceType": "Condition", "id": f"c{n}", "subject": {"reference": "Patient/pat-1"},
              "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": f"M25.{n:02d}"}]}}
             for n in range(11)]
    bundle = make_encounter_bundle(extra=conds)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            e["resource"]["diagnosis"] += [{"condition": {"reference": f"Condition/c{n}"}, "rank": 3 + n} for n in range(11)]
    claim, _, ids = run(bundle)
    assert len(claim["diagnosis"]) == 12 and "DX-TRUNCATED" in ids
    assert all(1 <= len(i["diagnosisSequence"]) <= 4 for i in claim["item"])


def test_malformed_diagnosis_code() -> None:
    bundle = make_encounter_bundle()
    for e in bundle["entry"]:
        if e["resource"]["id"] == "cond-2":
            e["resource"]["code"]["coding"][0]["code"] = "R2"
    _, _, ids = run(bundle)
    assert ids == ["DX-FORMAT"]


def test_timely_filing_medicare_twelve_months() -> None:
    bundle = make_encounter_bundle()
    _, _, ok = run(bundle, created=datetime(2026, 1, 14, 12, tzinfo=timezone.utc))
    _, _, late = run(bundle, created=datetime(2026, 1, 15, 12, tzinfo=timezone.utc))
    assert "TIMELY-FILING" not in ok and "TIMELY-FILING" in late


def test_progress_report_due_after_ten_treatment_days() -> None:
    history = [eob(f"eob-{d}", f"2025-01-{d:02d}", "97110", "GO", 30.0) for d in range(2, 12)]
    plans = [care_plan("cp-ot", "OT", "2025-01-02", None)]
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=history)
    _, _, ids = run(bundle)
    assert "THER-POC-PROGRESS-DUE" in ids
    report = {"resourceType": "DocumentReference", "id": "doc-1", "status": "current",
              "type": {"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/therapy-document-type",
                                   "code": "progress-report"}]},
              "subject": {"reference": "Patient/pat-1"}, "date": "2025-01-10T12:00:00+00:00",
              "content": [{"attachment": {"contentType": "text/plain"}}]}
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 30)], care_plans=plans, extra=history + [report])
    assert "THER-POC-PROGRESS-DUE" not in run(bundle)[2]


def test_not_completed_procedures_are_not_billed() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 30), Block("97530", 30, 15, status="not-done")])
    claim, _, ids = run(bundle)
    assert [c for c, _, _ in lines(claim)] == ["97110"] and ids == ["PROC-NOT-COMPLETED"]


def test_unknown_code_is_an_error() -> None:
    bundle = make_encounter_bundle(blocks=[Block("99213", 0, 15), Block("97110", 15, 30)])
    _, _, ids = run(bundle)
    assert "THER-CPT-UNKNOWN" in ids


def test_functional_reporting_gcodes_are_never_billed() -> None:
    bundle = make_encounter_bundle(blocks=[Block("G8978", 0, 1), Block("97110", 1, 30)])
    claim, _, ids = run(bundle)
    assert [c for c, _, _ in lines(claim)] == ["97110"] and ids == []


def test_pt_and_ot_on_the_same_day_count_minutes_per_discipline() -> None:
    plans = [care_plan("cp-ot", "OT", "2025-01-01", None), care_plan("cp-pt", "PT", "2025-01-01", None)]
    bundle = make_encounter_bundle(
        blocks=[Block("97530", 0, 10), Block("97110", 10, 10, performer="pt-1"), Block("97116", 20, 10, performer="pt-1")],
        care_plans=plans)
    claim, _, ids = run(bundle)
    # OT: 10 min -> 1 unit. PT: 20 min -> 1 unit, tie on leftovers broken towards 97110.
    assert lines(claim) == [("97530", ("GO",), 1), ("97110", ("GP",), 1)]
    assert "THER-UNITS-ZERO" in ids
    primaries = [m["provider"]["reference"] for m in claim["careTeam"] if m["role"]["coding"][0]["code"] == "primary"]
    assert primaries == ["Practitioner/pt-1", "Practitioner/ot-1"]  # most minutes first


def test_output_is_deterministic() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 15), Block("97530", 15, 23, performer="ota-1")])
    assert run(copy.deepcopy(bundle))[:2] == run(copy.deepcopy(bundle))[:2]


# --- scrubbing a claim that came from elsewhere -------------------------------------------

def _built(bundle):  # noqa: ANN001, ANN202
    inputs = ClaimInputs.from_resources(bundle)
    claim, _ = generate(inputs, claim_id="c-ext", created=datetime(2025, 1, 20, tzinfo=timezone.utc))
    return inputs, claim


def test_scrub_flags_tampered_units_modifiers_and_total() -> None:
    history = [eob("eob-1", "2025-01-06", "97530", "GO", 2500.0)]
    inputs, claim = _built(make_encounter_bundle(blocks=[Block("97140", 0, 15), Block("97530", 15, 30)], extra=history))
    profile = get_profile("medicare")
    assert not outcome_has_errors(scrub(claim, inputs, profile))
    bad = copy.deepcopy(claim)
    bad["item"][0]["quantity"]["value"] = 2                         # 97140: 15 min supports 1 unit
    bad["item"][1]["modifier"] = [m for m in bad["item"][1]["modifier"] if m["coding"][0]["code"] in ("GO",)]
    bad["total"]["value"] += 1
    outcome = scrub(bad, inputs, profile)
    by_rule = {i["details"]["coding"][0]["code"]: i["expression"] for i in outcome["issue"]}
    assert by_rule["THER-UNITS-8MIN"] == ["Claim.item[0].quantity"]
    assert by_rule["THER-KX-REQUIRED"] == ["Claim.item[1].modifier"]
    assert by_rule["NCCI-PAIR-MODIFIER"] == ["Claim.item[1].modifier"]
    assert by_rule["CLAIM-TOTAL"] == ["Claim.total"]


def test_scrub_without_inputs_runs_claim_level_edits() -> None:
    _, claim = _built(make_encounter_bundle())
    bad = copy.deepcopy(claim)
    bad["item"][0]["modifier"] = [{"coding": [{"code": m}]} for m in ("GO", "CO", "59", "KX", "GP")]
    bad["item"][0]["quantity"]["value"] = 2
    bad["item"][0]["diagnosisSequence"] = [1, 2, 3, 4, 5]
    outcome = scrub(bad, None, get_profile("medicare"))
    ids = [i["details"]["coding"][0]["code"] for i in outcome["issue"]]
    assert {"MOD-MAX-FOUR", "THER-MOD-DISCIPLINE", "THER-UNITS-UNTIMED", "DX-POINTERS", "CLAIM-TOTAL"} <= set(ids)
    assert "THER-MOD-ASSISTANT" not in ids  # CO sits with GO


def test_scrub_flags_missing_assistant_modifier() -> None:
    inputs, claim = _built(make_encounter_bundle(blocks=[Block("97530", 0, 30, performer="ota-1")]))
    bad = copy.deepcopy(claim)
    bad["item"][0]["modifier"] = bad["item"][0]["modifier"][:1]
    ids = [i["details"]["coding"][0]["code"] for i in scrub(bad, inputs, get_profile("medicare"))["issue"]]
    assert ids == ["THER-MOD-ASSISTANT"]


# --- unusable inputs ----------------------------------------------------------------------

def test_invalid_resource_is_rejected_with_its_location() -> None:
    bundle = make_encounter_bundle()
    bundle["entry"][0]["resource"]["birthDate"] = "12/03/1948"
    with pytest.raises(InputError) as err:
        ClaimInputs.from_resources(bundle)
    assert err.value.issues[0]["expression"] == ["Bundle.entry[0].resource.birthDate"]
    assert err.value.outcome["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: [e for e in b["entry"] if e["resource"]["resourceType"] != "Coverage"], "Coverage"),
        (lambda b: [e for e in b["entry"] if e["resource"]["resourceType"] != "Procedure"], "nothing to bill"),
        (lambda b: [e for e in b["entry"] if e["resource"]["resourceType"] != "Encounter"], "no Encounter"),
    ],
)
def test_missing_pieces_make_input_unusable(mutate, needle) -> None:  # noqa: ANN001
    bundle = make_encounter_bundle()
    bundle["entry"] = mutate(bundle)
    with pytest.raises(InputError) as err:
        ClaimInputs.from_resources(bundle)
    assert needle in str(err.value)


def test_unfinished_encounter_is_unusable() -> None:
    bundle = make_encounter_bundle()
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            e["resource"]["status"] = "in-progress"
    with pytest.raises(InputError) as err:
        ClaimInputs.from_resources(bundle)
    assert err.value.issues[0]["expression"][0].endswith(".status")


def test_missing_member_id_and_pos_are_reported() -> None:
    bundle = make_encounter_bundle()
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Coverage":
            del r["subscriberId"]
        if r["resourceType"] == "Encounter":
            del r["location"]
            r["class"]["code"] = "IMP"
    claim, outcome, ids = run(bundle)
    assert ids.count("INPUT-REQUIRED") == 2
    assert "locationCodeableConcept" not in claim["item"][0]


def test_scrub_claim_convenience_with_and_without_inputs() -> None:
    from fhir_mappings import scrub_claim

    inputs, claim = _built(make_encounter_bundle(blocks=[Block("97110", 0, 30)]))
    bad = copy.deepcopy(claim)
    bad["item"][0]["quantity"]["value"] = 3
    bad["item"][0]["net"]["value"] = 165.0
    bad["total"]["value"] = 165.0
    with_inputs = [i["details"]["coding"][0]["code"] for i in scrub_claim(bad, inputs)["issue"]]
    without = scrub_claim(bad, None, profile="medicare")
    assert with_inputs == ["THER-UNITS-8MIN"]
    assert not outcome_has_errors(without)  # units can only be judged against the record
    with pytest.raises(KeyError):
        scrub_claim(bad, None, profile="medicaid")


def test_pt_assistant_gets_cq_with_gp_and_slp_gets_gn() -> None:
    plans = [care_plan("cp-pt", "PT", "2025-01-01", None), care_plan("cp-slp", "SLP", "2025-01-01", None)]
    bundle = make_encounter_bundle(
        blocks=[Block("97110", 0, 30, performer="pta-1", discipline_plan="cp-pt"),
                Block("97116", 30, 15, performer="pt-1", discipline_plan="cp-pt"),
                Block("92507", 45, 30, performer="slp-1", discipline_plan="cp-slp")],
        care_plans=plans)
    claim, _, ids = run(bundle)
    assert lines(claim) == [("97110", ("GP", "CQ"), 2), ("97116", ("GP",), 1), ("92507", ("GN",), 1)]
    assert ids == []


def test_performer_as_practitioner_role_carries_its_taxonomy() -> None:
    role = {"resourceType": "PractitionerRole", "id": "role-ot",
            "practitioner": {"reference": "Practitioner/ot-1"},
            "code": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "225XH1200X"}]}]}
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 30)], extra=[role])
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Procedure":
            r["performer"] = [{"actor": {"reference": "PractitionerRole/role-ot"}}]
    claim, _, ids = run(bundle)
    assert ids == []
    assert claim["careTeam"][0]["provider"]["reference"] == "Practitioner/ot-1"
    assert claim["careTeam"][0]["qualification"]["coding"][0]["code"] == "225XH1200X"


def test_assistant_only_visit_renders_under_the_supervising_therapist() -> None:
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 30, performer="ota-1")])
    claim, _, ids = run(bundle)
    primary = [m for m in claim["careTeam"] if m["role"]["coding"][0]["code"] == "primary"]
    assert [m["provider"]["reference"] for m in primary] == ["Practitioner/ot-1"]  # Encounter participant
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            e["resource"]["participant"] = []
    _, outcome, ids = run(bundle)
    assert "RENDERING-PROVIDER" in ids and outcome_has_errors(outcome)


def test_careplan_without_discipline_is_reported() -> None:
    plan = care_plan("cp-x", "OT", "2025-01-01", None)
    plan["category"] = [{"text": "rehab"}]
    bundle = make_encounter_bundle(blocks=[Block("97530", 0, 30, performer="ota-1", discipline_plan="cp-x")],
                                   care_plans=[plan])
    _, outcome, ids = run(bundle)
    assert "THER-POC-MISSING" in ids and outcome_has_errors(outcome)


def test_encounter_without_period_is_unusable() -> None:
    bundle = make_encounter_bundle()
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            del e["resource"]["period"]
    with pytest.raises(InputError) as err:
        ClaimInputs.from_resources(bundle)
    assert "date of service" in str(err.value)


def test_list_input_addresses_resources_by_type_and_id() -> None:
    from fhir_mappings import build_claim

    bundle = make_encounter_bundle(care_plans=[care_plan("cp-ot", "OT", "2024-10-01", "2024-12-29")])
    resources = [e["resource"] for e in bundle["entry"]]
    inputs = ClaimInputs.from_resources(resources)
    claim = build_claim(inputs, profile="medicare", claim_id="c-list", created=datetime(2025, 1, 20, tzinfo=timezone.utc))
    outcome = scrub(claim, inputs, get_profile("medicare"))
    issue = issues_for(outcome, "THER-POC-DOS-OUTSIDE")[0]
    assert issue["expression"] == ["CarePlan.where(id='cp-ot').period"]
    with pytest.raises(ValueError):
        build_claim(inputs, profile="medicare", claim_id="c", created=datetime(2025, 1, 20))


def test_medicare_billed_after_another_payer_needs_its_msp_type() -> None:
    """A claim to Medicare as the second payer (an employer plan paid first) is held until the
    Medicare Coverage says why Medicare is secondary (837P SBR05); a valid type passes."""
    from fhir_mappings.vocabulary import MSP_TYPE

    profile = get_profile("medicare")
    for extension, held in (([], True), ([{"url": MSP_TYPE, "valueCode": "99"}], True),
                            ([{"url": MSP_TYPE, "valueCode": "12"}], False)):
        inputs, claim = _built(make_encounter_bundle(coverage_extra={"extension": extension} if extension else None))
        assert issues_for(scrub(claim, inputs, profile), "MSP-TYPE") == []  # billed first: no question
        second = copy.deepcopy(claim)
        second["insurance"] = [{"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/ghp"},
                                "claimResponse": {"reference": "ClaimResponse/ghp-answer"}},
                               {**claim["insurance"][0], "sequence": 2}]
        found = issues_for(scrub(second, inputs, profile), "MSP-TYPE")
        assert bool(found) is held, extension
        if held:
            assert found[0]["expression"] == ["Claim.insurance[1].coverage"] and MSP_TYPE in found[0]["details"]["text"]
