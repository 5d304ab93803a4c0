"""CHC v3 JSON reports (277CA, 835) → the X12 decoder's records → the FHIR the server posts.

Fixtures in ``data/`` are hand-written in the shape Stedi and Optum document; the round-trip tests
convert the sandbox's own X12 answers and check the JSON posts exactly what the X12 posts."""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation
from hypothesis import given, settings
from hypothesis import strategies as st

from payer_adapters.chc_reports import ReportError, decode_report, report_kind
from payer_adapters.sandbox import Engine, load_config
from payer_adapters.sandbox.model import Claim, Line
from payer_adapters.sandbox.report_json import convert_report
from payer_adapters.sandbox.x12_out import Counter, InboundEnvelope, ReplyWriter, write_277ca, write_835
from payer_adapters.x12 import decode

DATA = Path(__file__).parent / "data"
LINE_CONTROL = "https://therabridge.dev/fhir/StructureDefinition/line-control-number"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
GROUP = "https://x12.org/codes/claim-adjustment-group-codes"
CONFIG = load_config()


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def claim(cid: str, pcn: str, lines: int) -> dict[str, Any]:
    """A stored Claim as posting sees it: items carry their line control numbers."""
    return {"resourceType": "Claim", "id": cid, "patient": {"reference": "Patient/pat-brooks"},
            "insurer": {"reference": "Organization/payer-acme"},
            "insurance": [{"coverage": {"reference": "Coverage/cov-brooks"}}],
            "provider": {"reference": "Organization/demo-practice"},
            "item": [{"sequence": n, "extension": [{"url": LINE_CONTROL, "valueString": f"{pcn}-{n}"}]}
                     for n in range(1, lines + 1)]}


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


# -- 277CA ----------------------------------------------------------------------------------------

def test_277ca_json_reads_into_claim_acknowledgments():
    result = decode_report(json.dumps(fixture("chc_277ca.json")).encode(), kind="277CA")
    [ack] = result.claim_acknowledgments
    assert (ack.source_entity, ack.source_id, ack.source_name) == ("PR", "ACME01", "ACME HEALTH PLAN")
    assert ack.reference == "ACK77001" and ack.process_date == "2026-11-21"
    assert [s.category for s in ack.batch_statuses] == ["A1"]
    accepted, rejected = ack.claims
    assert (accepted.patient_control_number, accepted.outcome) == ("PCNJSON1", "queued")
    assert accepted.payer_claim_control_number == "ACM900001" and accepted.billing_npi == "1345678902"
    assert accepted.statuses[0].amount == Decimal("205.00") and accepted.service_date == "2026-11-04"
    assert (rejected.patient_control_number, rejected.outcome, rejected.member_id) == ("PCNJSON3", "error", "ACM000000000")
    [st_] = rejected.statuses
    assert (st_.category, st_.code, st_.entity, st_.action) == ("A7", "164", "IL", "U")
    [line] = rejected.lines
    assert (line.code, line.modifiers, line.line_control_number) == ("97110", ["GO"], "PCNJSON3-1")
    assert line.statuses[0].rejected  # A6 rejects even without an action code


def test_277ca_json_becomes_claim_responses_like_the_x12_path():
    bundle = decode_report(fixture("chc_277ca.json")).to_fhir(
        {"PCNJSON1": claim("c1", "PCNJSON1", 2), "PCNJSON3": claim("c3", "PCNJSON3", 1)})
    ok, bad = resources(bundle, "ClaimResponse")
    for r in (ok, bad):
        ClaimResponse.model_validate(r)
    assert ok["outcome"] == "queued" and ok["request"]["reference"] == "Claim/c1"
    assert ok["identifier"][0]["value"] == "ACM900001" and ok["created"] == "2026-11-21"
    assert bad["outcome"] == "error" and bad["request"]["reference"] == "Claim/c3"
    codes = [[c["code"] for c in e["code"]["coding"]] for e in bad["error"]]
    assert codes[0] == ["A7", "164", "IL"]
    assert bad["error"][1]["itemSequence"] == 1 and codes[1] == ["A6", "453"]  # matched by line control number
    assert "Entity's contract or member number" in bad["disposition"]


def test_same_acknowledgment_read_twice_gives_the_same_ids():
    """Ids come from BHT03 + source, not from the delivery: a re-sent report overwrites, never adds."""
    again = fixture("chc_277ca.json")
    again["meta"]["transactionId"] = "another-delivery"
    first = [r["id"] for r in resources(decode_report(fixture("chc_277ca.json")).to_fhir(), "ClaimResponse")]
    assert [r["id"] for r in resources(decode_report(again).to_fhir(), "ClaimResponse")] == first


def test_277ca_json_batch_and_provider_rejections_become_level_records():
    """``providerClaimStatuses`` (2200B) and ``serviceProviderClaimStatuses`` (2200C) map to the
    same level records as X12, with the batch number and provider trace, and reach the Bundle."""
    body = fixture("chc_277ca.json")
    assert decode_report(body).claim_acknowledgments[0].level_rejections == []  # A1 at 2200B: received
    cst = body["transactions"][0]["payers"][0]["claimStatusTransactions"][0]
    cst["providerClaimStatuses"] = [{"statusInformationEffectiveDate": "20261121", "providerStatuses": [
        {"healthCareClaimStatusCategoryCode": "A3", "statusCode": "24", "entityIdentifierCode": "41"}]}]
    detail = cst["claimStatusDetails"][0]
    detail["providerOFServiceInformationTraceIdentifier"] = "PROV-7"
    detail["serviceProviderClaimStatuses"] = [{"serviceProviderStatuses": [
        {"healthCareClaimStatusCategoryCode": "A3", "statusCode": "24", "entityIdentifierCode": "85"}]}]
    [ack] = decode_report(body).claim_acknowledgments
    receiver, provider = ack.level_rejections
    assert (receiver.loop, receiver.entity, receiver.etin, receiver.trace, receiver.batch_trace) == (
        "2200B", "41", "THERABRIDGE", "BATCH-0042", "BATCH-0042")
    assert (provider.loop, provider.entity, provider.npi, provider.trace, provider.batch_trace) == (
        "2200C", "85", "1345678902", "PROV-7", "BATCH-0042")
    assert [(s.category, s.code, s.entity, s.date) for s in receiver.statuses] == [("A3", "24", "41", "2026-11-21")]
    for c in ack.claims:
        assert (c.batch_trace, c.provider_trace, c.billing_provider_qualifier, c.billing_provider_id) == (
            "BATCH-0042", "PROV-7", "XX", "1345678902")
    outcomes = resources(decode_report(body).to_fhir(), "OperationOutcome")
    loops = [next(p["valueCoding"]["code"] for p in o["extension"][0]["extension"] if p["url"] == "loop")
             for o in outcomes]
    assert loops == ["2200B", "2200C"]
    assert all(o["issue"][0]["severity"] == "error" for o in outcomes)


# -- 835 ------------------------------------------------------------------------------------------

def test_835_json_reads_into_a_balanced_remittance():
    [rem] = decode_report(fixture("chc_835.json"), kind="835").remittances
    assert rem.payment_identity == ("EFT20261122A", "ACME01") and rem.total_paid == Decimal("91.40")
    assert (rem.method, rem.payment_date, rem.production_date) == ("ACH", "2026-11-22", "2026-11-20")
    assert rem.balance_errors == [] and rem.claim_count == 2 and rem.paid_sum == Decimal("101.40")
    paid, denied = rem.claims
    assert (paid.patient_control_number, paid.status, paid.paid, paid.patient_responsibility) == (
        "PCNJSON1", "1", Decimal("101.40"), Decimal("30"))
    assert paid.period == ("2026-11-04", "2026-11-04") and paid.rendering_npi == "1234567893"
    first = paid.services[0]
    assert (first.code, first.modifiers, first.units, first.allowed) == ("97530", ["GO"], Decimal("2"), Decimal("83.85"))
    assert [(a.group, a.reason, a.amount) for a in first.adjustments] == [
        ("CO", "45", Decimal("36.15")), ("PR", "3", Decimal("30"))]
    assert denied.status == "4" and denied.remarks == ["MA01"] and denied.services[0].remarks == ["N386"]
    [plb] = rem.provider_adjustments
    assert (plb.reason, plb.reference, plb.amount) == ("WO", "OVERPAY-2026", Decimal("10"))


def test_835_json_becomes_eobs_and_a_payment_reconciliation():
    bundle = decode_report(fixture("chc_835.json")).to_fhir({"PCNJSON1": claim("c1", "PCNJSON1", 2)})
    eob, denied = resources(bundle, "ExplanationOfBenefit")
    [pr] = resources(bundle, "PaymentReconciliation")
    for r in (eob, denied):
        ExplanationOfBenefit.model_validate(r)
    PaymentReconciliation.model_validate(pr)
    assert eob["claim"]["reference"] == "Claim/c1" and eob["payment"]["amount"]["value"] == 101.4
    assert [i["sequence"] for i in eob["item"]] == [1, 2]
    adjustments = [(a["category"]["coding"][0]["code"], a["reason"]["coding"][0]["code"], a["amount"]["value"])
                   for a in eob["item"][0]["adjudication"] if a["category"]["coding"][0]["system"] == GROUP]
    assert adjustments == [("CO", "45", 36.15), ("PR", "3", 30.0)]
    eligible = [a["amount"]["value"] for a in eob["item"][0]["adjudication"] if a["category"]["coding"][0]["code"] == "eligible"]
    assert eligible == [83.85]  # AMT*B6 allowed
    reason = next(a["reason"]["coding"][0] for a in denied["item"][0]["adjudication"] if "reason" in a)
    assert reason["system"] == CARC and reason["code"] == "50"
    assert [n["text"].split(":")[0] for n in denied["processNote"]] == ["MA01", "N386"]  # RARC
    assert "claim" in denied and "reference" not in denied["claim"]  # no stored claim: logical reference only
    assert pr["paymentAmount"]["value"] == 91.4 and pr["outcome"] == "complete"
    assert pr["paymentIdentifier"]["value"] == "EFT20261122A"
    assert [d["type"]["coding"][0]["code"] for d in pr["detail"]] == ["payment", "payment", "adjustment"]


def test_835_that_does_not_balance_is_reported_not_fixed():
    body = fixture("chc_835.json")
    body["transactions"][0]["financialInformation"]["totalActualProviderPaymentAmount"] = "99.99"
    [rem] = decode_report(body).remittances
    assert rem.balance_errors and "99.99" in rem.balance_errors[0].message
    [pr] = resources(decode_report(body).to_fhir(), "PaymentReconciliation")
    assert pr["outcome"] == "error" and pr["disposition"].startswith("Does not balance")


def test_amounts_sent_as_json_numbers_are_read_exactly():
    text = json.dumps(fixture("chc_835.json")).replace('"claimPaymentAmount": "101.40"', '"claimPaymentAmount": 101.40')
    assert '"claimPaymentAmount": 101.40' in text
    [rem] = decode_report(text.encode()).remittances
    assert rem.claims[0].paid == Decimal("101.40") and rem.balance_errors == []


# -- the sandbox's JSON says what its X12 says -------------------------------------------------------

def _sandbox_answer(claims: list[Claim]) -> tuple[str, str | None]:
    engine = Engine(CONFIG)
    results = [engine.process(c, received=date(2026, 11, 23), salt="json") for c in claims]
    reply = ReplyWriter(InboundEnvelope(sender_id="THERABRIDGE", receiver_id="TBSANDBOX", isa_control="7",
                                        gs_sender="THERABRIDGE", gs_receiver="TBSANDBOX", gs_control="7",
                                        gs_version="005010X222A1", gs_functional_id="HC",
                                        sets=[("837", "0001", "005010X222A1")]),
                        datetime(2026, 11, 23, tzinfo=timezone.utc), Counter())
    ack = write_277ca(reply, results, batch_id="B7", received=reply.now, config=CONFIG.data)
    paid = [r for r in results if not r.rejected]
    return ack, write_835(reply, paid, trace_seed="JSON", config=CONFIG.data) if paid else None


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("id", "fullUrl")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _claim(member: str, lines: list[Line], pcn: str = "PCNRT") -> Claim:
    for n, ln in enumerate(lines, start=1):
        ln.sequence, ln.control = n, f"{pcn}-{n}"
    return Claim(pcn=pcn, member_id=member, payer_id=CONFIG.data["members"].get(member, {}).get("payer", "ACME01"),
                 billing_npi="1345678902", billing_name="RIVERSIDE", patient_last="DOE", patient_first="JO",
                 total=sum((ln.charge for ln in lines), Decimal(0)), lines=lines)


line = st.builds(
    lambda code, mods, cents, units: Line(code, mods, Decimal(cents) / 100, Decimal(units), "20261110"),
    st.sampled_from(sorted(CONFIG.data["base_fee_schedule"])),
    st.lists(st.sampled_from(["GO", "GP", "GN", "KX", "CQ", "59"]), min_size=0, max_size=3, unique=True),
    st.integers(min_value=1, max_value=90000), st.integers(min_value=1, max_value=8))


@settings(max_examples=40, deadline=None)
@given(member=st.sampled_from([*sorted(CONFIG.data["members"]), "ZZZ404"]),
       lines=st.lists(line, min_size=1, max_size=5))
def test_sandbox_json_reports_post_exactly_what_its_x12_posts(member, lines):
    ack_x12, remit_x12 = _sandbox_answer([_claim(member, lines)])
    stored = {"PCNRT": claim("c-rt", "PCNRT", len(lines))}
    ack_json = convert_report(ack_x12, transaction_id="rt-277", sender_id="TBSANDBOX")
    assert report_kind(ack_json) == "277CA"
    assert _without_ids(decode_report(ack_json).to_fhir(stored)) == _without_ids(decode(ack_x12).to_fhir(stored))
    if remit_x12 is not None:
        remit_json = convert_report(remit_x12, transaction_id="rt-835", sender_id="TBSANDBOX")
        # 835 ids rest on the payment identity, so even they agree: one payment, either form, posted once
        assert decode_report(remit_json, kind="835").to_fhir(stored) == decode(remit_x12).to_fhir(stored)


# -- unreadable reports -----------------------------------------------------------------------------

def _broken(path: list[Any], value: Any, name: str = "chc_835.json") -> dict[str, Any]:
    body = copy.deepcopy(fixture(name))
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()
_CLAIM = ["transactions", 0, "detailInfo", 0, "paymentInfo", 0]
_STATUS = ["transactions", 0, "payers", 0, "claimStatusTransactions", 0, "claimStatusDetails", 0,
           "patientClaimStatusDetails", 1, "claims", 0, "claimStatus"]


@pytest.mark.parametrize("data, kind, where", [
    (b"ISA*00*not json", None, ""),
    (b'{"transactions": [', None, ""),
    (b"[1, 2]", None, "$"),
    (b'{"meta": {}}', None, "$.transactions"),
    (b'{"transactions": [{"foo": 1}]}', None, "$.transactions[0]"),
    (json.dumps(fixture("chc_835.json")).encode(), "277CA", "$.transactions[0]"),
    (_broken(["transactions", 0, "detailInfo"], "oops"), "835", "$.transactions[0].detailInfo"),
    (_broken([*_CLAIM, "claimPaymentInfo", "claimPaymentAmount"], "12x"), "835",
     "detailInfo[0].paymentInfo[0].claimPaymentInfo.claimPaymentAmount"),
    (_broken([*_CLAIM, "claimPaymentInfo", "patientControlNumber"], _DELETE), "835", "claimPaymentInfo.patientControlNumber"),
    (_broken([*_CLAIM, "serviceLines", 0, "serviceDate"], "20261340"), "835", "serviceLines[0].serviceDate"),
    (_broken([*_CLAIM, "serviceLines", 0, "serviceAdjustments", 0, "claimAdjustmentGroupCode"], _DELETE), "835",
     "serviceAdjustments[0].claimAdjustmentGroupCode"),
    (_broken(["transactions", 0, "financialInformation", "totalActualProviderPaymentAmount"], {"v": 1}), "835",
     "financialInformation.totalActualProviderPaymentAmount"),
    (_broken(["transactions", 0, "paymentAndRemitReassociationDetails", "checkOrEFTTraceNumber"], _DELETE), "835",
     "paymentAndRemitReassociationDetails.checkOrEFTTraceNumber"),
    (_broken([*_STATUS, "referencedTransactionTraceNumber"], _DELETE, "chc_277ca.json"), "277CA",
     "claims[0].claimStatus"),
    (_broken([*_STATUS, "informationClaimStatuses", 0, "informationStatuses", 0, "healthCareClaimStatusCategoryCode"],
             _DELETE, "chc_277ca.json"), "277CA", "informationStatuses[0].healthCareClaimStatusCategoryCode"),
])
def test_unreadable_reports_raise_report_error_naming_where(data, kind, where):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(ReportError) as err:
        decode_report(raw, kind=kind)
    assert where in err.value.path
    for secret in ("ACM987654321", "BROOKS", "12x", "20261340", "oops"):
        assert secret not in str(err.value)  # no member data (or any value) in what gets logged
