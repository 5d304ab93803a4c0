"""The shared example files decode to the expected typed records and FHIR resources."""
from __future__ import annotations

from decimal import Decimal

from payer_adapters.x12 import Ack277, Ack999, Eligibility, Remittance, decode, validate

from .fhir_check import adjudication, assert_valid_bundle, resources


def test_835_typed_records(examples):
    result = decode(examples / "835_ot_remittance.x12")
    rem = result.remittances[0]
    assert isinstance(rem, Remittance)
    assert rem.total_paid == Decimal("122.77") and rem.method == "ACH" and rem.payment_date == "2025-02-10"
    assert rem.payment_identity == ("EFT000123456", "1512345678")
    assert rem.payee_npi == "1234567893" and rem.payee_tin == "371234567"
    assert rem.balance_errors == [] and result.warnings == []
    paid, denied = rem.claims
    assert (paid.patient_control_number, paid.status, paid.charge, paid.paid, paid.patient_responsibility) == (
        "PCN20250114A", "1", Decimal(250), Decimal("121.52"), Decimal(31))
    assert paid.payer_claim_control_number == "22025031000001"
    eval_line = paid.services[0]
    assert (eval_line.code, eval_line.modifiers, eval_line.charge, eval_line.paid, eval_line.allowed) == (
        "97165", ["GO"], Decimal(150), Decimal("78.4"), Decimal(100))
    assert [(a.group, a.reason, a.amount) for a in eval_line.adjustments] == [
        ("CO", "45", Decimal(50)), ("CO", "253", Decimal("1.6")), ("PR", "2", Decimal(20))]
    assert denied.status == "4" and denied.services[0].remarks == ["N115"]
    assert rem.provider_adjustments[0].reason == "L6" and rem.provider_adjustments[0].amount == Decimal("-1.25")


def test_835_fhir(examples):
    bundle = decode(examples / "835_ot_remittance.x12").to_fhir()
    assert_valid_bundle(bundle)
    eobs = resources(bundle, "ExplanationOfBenefit")
    assert len(eobs) == 2
    eob = eobs[0]
    assert eob["claim"]["identifier"]["value"] == "PCN20250114A"
    assert eob["identifier"][0]["value"] == "22025031000001"
    assert eob["outcome"] == "complete"
    assert eob["extension"][0]["valueCoding"]["code"] == "1"
    totals = {t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in eob["total"]}
    assert totals == {"submitted": 250.0, "benefit": 121.52, "patient-responsibility": 31.0}
    line = eob["item"][0]
    assert line["productOrService"]["coding"][0]["code"] == "97165"
    assert line["modifier"][0]["coding"][0]["code"] == "GO"
    assert line["servicedDate"] == "2025-01-14"
    assert adjudication(line["adjudication"], "eligible")[0]["amount"]["value"] == 100.0
    co = adjudication(line["adjudication"], "CO")
    assert [(a["reason"]["coding"][0]["code"], a["amount"]["value"]) for a in co] == [("45", 50.0), ("253", 1.6)]
    assert adjudication(line["adjudication"], "PR")[0]["reason"]["coding"][0]["code"] == "2"
    denied = eobs[1]
    assert denied["extension"][0]["valueCoding"]["code"] == "4"
    assert denied["processNote"][0]["text"].startswith("N115")
    assert denied["item"][0]["noteNumber"] == [1]
    pr = resources(bundle, "PaymentReconciliation")[0]
    assert pr["paymentAmount"]["value"] == 122.77 and pr["paymentDate"] == "2025-02-10"
    assert pr["paymentIdentifier"]["value"] == "EFT000123456" and pr["outcome"] == "complete"
    assert [d["amount"]["value"] for d in pr["detail"]] == [121.52, 0.0, 1.25]
    assert not resources(bundle, "OperationOutcome")


def test_999_accept(examples):
    result = decode(examples / "999_accept_837p.x12")
    ack = result.acknowledgments[0]
    assert isinstance(ack, Ack999)
    assert (ack.group_functional_id, ack.group_control_number, ack.group_status) == ("HC", "101", "A")
    s = ack.sets[0]
    assert (s.transaction, s.control_number, s.status, s.accepted) == ("837", "0001", "A", True)
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    oo = resources(bundle, "OperationOutcome")[0]
    assert oo["issue"][0]["severity"] == "information"
    assert oo["extension"][0]["valueString"] == "HC/101/0001/A"


def test_999_reject_points_at_claim_and_element(examples):
    result = decode(examples / "999_reject_837p.x12")
    s = result.acknowledgments[0].sets[0]
    assert s.status == "R" and not s.accepted and s.set_errors == ["5"]
    note = s.segments[0]
    assert (note.segment_id, note.position, note.loop_id, note.code) == ("SV1", 26, "2400", "8")
    assert note.patient_control_number == "PCN20250114A" and s.patient_control_numbers == ["PCN20250114A"]
    assert (note.elements[0].position, note.elements[0].element_reference, note.elements[0].code) == (3, "355", "7")
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    issues = resources(bundle, "OperationOutcome")[0]["issue"]
    element_issue = issues[-1]
    assert element_issue["severity"] == "error"
    assert element_issue["expression"] == ["2400/SV1[26]/SV103"]
    assert element_issue["extension"][0]["valueIdentifier"]["value"] == "PCN20250114A"
    assert element_issue["details"]["coding"][0]["code"] == "7"


def test_277ca(examples):
    result = decode(examples / "277ca_ot_claim_ack.x12")
    ack = result.claim_acknowledgments[0]
    assert isinstance(ack, Ack277)
    accepted, rejected = ack.claims
    assert accepted.patient_control_number == "PCN20250114A" and accepted.outcome == "queued"
    assert accepted.payer_claim_control_number == "22025031000001"
    assert (accepted.statuses[0].category, accepted.statuses[0].code, accepted.statuses[0].action) == ("A2", "20", "WQ")
    assert rejected.patient_control_number == "PCN20250113D" and rejected.outcome == "error"
    assert (rejected.statuses[0].category, rejected.statuses[0].code, rejected.statuses[0].entity) == ("A7", "562", "82")
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    ok, bad = resources(bundle, "ClaimResponse")
    assert ok["outcome"] == "queued" and ok["identifier"][0]["value"] == "22025031000001"
    assert ok["request"]["identifier"]["value"] == "PCN20250114A"
    assert "Accepted into adjudication" in ok["disposition"]
    assert bad["outcome"] == "error" and "identifier" not in bad
    codes = [c["code"] for c in bad["error"][0]["code"]["coding"]]
    assert codes == ["A7", "562", "82"]
    assert "NPI" in bad["disposition"] and "Rendering provider" in bad["disposition"]


def test_271(examples):
    result = decode(examples / "271_ot_eligibility_response.x12")
    elig = result.eligibility[0]
    assert isinstance(elig, Eligibility)
    assert elig.active is True and elig.plan == "GOLD PPO" and elig.trace_number == "ELIG0001"
    ot = next(s for s in elig.summaries() if s.service_type == "AD" and s.in_network)
    assert ot.copay == Decimal(30) and ot.coinsurance_percent == Decimal(20)
    assert (ot.visits_total, ot.visits_remaining, ot.visits_used, ot.visits_period) == (20, 12, 8, "23")
    assert ot.auth_required is False
    merged = elig.summary("AD")
    assert merged.active is True and merged.copay == 30 and merged.visits_remaining == 12
    plan = next(s for s in elig.summaries() if s.service_type == "30" and s.in_network)
    assert (plan.deductible_total, plan.deductible_remaining) == (Decimal(500), Decimal(350))
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    resp = resources(bundle, "CoverageEligibilityResponse")[0]
    assert resp["outcome"] == "complete" and resp["request"]["identifier"]["value"] == "ELIG0001"
    ins = resp["insurance"][0]
    assert ins["inforce"] is True and ins["coverage"]["display"] == "GOLD PPO"
    item = next(i for i in ins["item"] if i["category"]["coding"][0]["code"] == "AD" and "network" in i)
    benefits = {b["type"]["coding"][0]["code"]: b for b in item["benefit"]}
    assert benefits["copay"]["allowedMoney"]["value"] == 30.0
    assert benefits["copay-percent"]["allowedUnsignedInt"] == 20
    assert benefits["visit"]["allowedUnsignedInt"] == 20 and benefits["visit"]["usedUnsignedInt"] == 8
    assert benefits["visit-remaining"]["allowedUnsignedInt"] == 12
    assert item["network"]["coding"][0]["code"] == "in" and item["authorizationRequired"] is False


def test_837_examples_read_and_validate(examples):
    sub = decode(examples / "837p_ot_two_lines.x12").transactions[0]
    claim = sub.claims[0]
    assert (claim.patient_control_number, claim.total, claim.frequency) == ("PCN20250114A", Decimal(250), "1")
    assert [(line.code, line.units) for line in claim.lines] == [("97165", 1), ("97110", 2)]
    assert decode(examples / "837p_ot_replacement_freq7.x12").transactions[0].claims[0].original_reference == \
        "22025031000001"
    for name in ("837p_ot_two_lines.x12", "837p_ot_workers_comp.x12", "835_ot_remittance.x12", "270_ot_eligibility.x12"):
        assert validate(examples / name) == [], name
    errors = validate(examples / "837p_ot_INVALID_sv103_expected_fail.x12")
    assert len(errors) == 1 and errors[0].segment_id == "SV1" and errors[0].element_position == 3
    assert "(XX)" not in str(errors[0])  # pyx12 echoes bad values; we do not
