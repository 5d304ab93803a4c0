"""276 claim status requests out, 277 claim status responses (005010X212) in.

The 276s written here are checked by our own structural walk (``Decoder276``), by pyx12 through the
product's 005010X212 map (pyx12 4 ships none) and by their exact segments. pyx12's 277 X212 map is
not registered, so 277s are checked by our decoder only.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fhir_mappings.vocabulary as vocabulary
from app.cli import app
from payer_adapters.x12 import (
    DataElementError,
    EncodeError,
    InMemoryControlNumbers,
    StructureError,
    X12Error,
    decode,
    encode_276,
    validate,
)
from payer_adapters.x12.decode_276 import StatusInquiry
from payer_adapters.x12.validate import pyx12_available_for, pyx12_errors

from . import builders as B
from .conftest import NOW
from .envelopes import interchange
from .fhir_check import assert_valid_bundle, resources

runner = CliRunner()


def segs(x12: bytes | str) -> list[list[str]]:
    text = x12.decode() if isinstance(x12, bytes) else x12
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def body_of(x12: bytes) -> list[list[str]]:
    """The segments between ST and SE of a one-set interchange."""
    s = segs(x12)
    return s[s.index(next(x for x in s if x[0] == "ST")) + 1: s.index(next(x for x in s if x[0] == "SE"))]


def assert_valid_276(x12: bytes) -> None:
    assert pyx12_available_for(x12)  # through the product's 005010X212 map
    assert validate(x12) == []


# -- 276 out ---------------------------------------------------------------------------------

def test_276_for_a_subscriber_claim(partner, numbers):
    out = encode_276(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    assert_valid_276(out)
    s = segs(out)
    assert s[1][1] == "HR" and s[1][8] == "005010X212" and s[2][1:] == ["276", "0101", "005010X212"]
    assert body_of(out) == [
        ["BHT", "0010", "13", "0000001010101", "20250115", "1030"],
        ["HL", "1", "", "20", "1"], ["NM1", "PR", "2", "MEDICARE PART B", "", "", "", "", "PI", "00952"],
        ["HL", "2", "1", "21", "1"], ["NM1", "41", "2", "THERABRIDGE", "", "", "", "", "46", "THERABRIDGE"],
        ["HL", "3", "2", "19", "1"],
        ["NM1", "1P", "2", "BRIGHT HANDS OCCUPATIONAL THERAPY", "", "", "", "", "XX", "1234567893"],
        ["HL", "4", "3", "22", "0"], ["DMG", "D8", "19480312", "F"],
        ["NM1", "IL", "1", "DOE", "JANE", "", "", "", "MI", "1EG4TE5MK73"],
        ["TRN", "1", "PCN20250114A"], ["REF", "EJ", "PCN20250114A"], ["AMT", "T3", "310"],
        ["DTP", "472", "D8", "20250114"],
    ]
    inquiry = decode(out).transactions[0].inquiries[0]
    assert (inquiry.trace, inquiry.patient_control_number, inquiry.billed, inquiry.payer_id, inquiry.provider_npi,
            inquiry.member_id, inquiry.dependent) == ("PCN20250114A", "PCN20250114A", Decimal("310"), "00952",
                                                      "1234567893", "1EG4TE5MK73", False)


def test_276_for_a_dependent_patient(partner, numbers):
    out = encode_276(B.commercial_bundle(), partner, numbers, now=NOW)
    assert_valid_276(out)
    body = body_of(out)
    i = body.index(["HL", "4", "3", "22", "1"])
    assert body[i + 1] == ["DMG", "D8", "19790202", "M"]
    assert body[i + 2] == ["NM1", "IL", "1", "DOE", "JOHN", "", "", "", "MI", "W123456789"]
    assert body[i + 3:i + 7] == [["HL", "5", "4", "23"], ["DMG", "D8", "19800515", "F"],
                                 ["NM1", "QC", "1", "DOE", "JANE"], ["TRN", "1", "PCN20250201C"]]
    assert decode(out).transactions[0].inquiries[0].dependent


def test_276_workers_comp_employer_is_the_subscriber(partner, numbers):
    out = encode_276(B.workers_comp_bundle(), partner, numbers, now=NOW)
    assert_valid_276(out)
    body = body_of(out)
    assert ["NM1", "IL", "2", "ACME MANUFACTURING INC", "", "", "", "", "MI", "WCPOL778899"] in body
    assert ["HL", "5", "4", "23"] in body and ["NM1", "QC", "1", "DOE", "JANE"] in body


def test_276_service_period_and_billed_amount(partner, numbers):
    items = [B.line(1, "97110", ["GO"], 2, 100, date="2025-01-06"),
             B.line(2, "97530", ["GO"], 1, 55.5, date="2025-01-20"),
             B.line(3, "97140", ["GO"], 1, 45, date="2025-01-13")]
    out = encode_276(B.medicare_ot_bundle(items=items), partner, numbers, now=NOW)
    assert_valid_276(out)
    body = body_of(out)
    assert ["AMT", "T3", "200.5"] in body and ["DTP", "472", "RD8", "20250106-20250120"] in body
    inquiry = decode(out).transactions[0].inquiries[0]
    assert (inquiry.service_start, inquiry.service_end) == ("2025-01-06", "2025-01-20")


def test_276_payer_claim_number_from_an_earlier_answer(partner, numbers):
    b = B.medicare_ot_bundle()
    b["entry"].append({"fullUrl": "urn:uuid:cr-1", "resource": {
        "resourceType": "ClaimResponse", "id": "cr1", "status": "active", "use": "claim", "outcome": "queued",
        "identifier": [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": "22025014000123"}],
        "request": {"type": "Claim", "identifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER,
                                                    "value": "PCN20250114A"}}}})
    out = encode_276(b, partner, numbers, now=NOW)
    assert_valid_276(out)
    body = body_of(out)
    assert body[body.index(["TRN", "1", "PCN20250114A"]) + 1] == ["REF", "1K", "22025014000123"]
    assert decode(out).transactions[0].inquiries[0].payer_claim_number == "22025014000123"


def test_276_payer_claim_number_on_the_claim_but_not_its_own_identifier(partner, numbers):
    b = B.medicare_ot_bundle()
    claim = b["entry"][0]["resource"]
    claim["identifier"].append({"system": "urn:example:practice-claims", "value": "INTERNAL-77"})
    assert not any(x[:2] == ["REF", "1K"] for x in body_of(encode_276(b, partner, numbers, now=NOW)))
    claim["identifier"].append({"system": vocabulary.PAYER_CLAIM_NUMBER, "value": "PAYER555"})
    assert ["REF", "1K", "PAYER555"] in body_of(encode_276(b, partner, numbers, now=NOW))


def test_276_one_set_per_claim_and_a_stable_trace(partner):
    b = B.many_claims_bundle(3, lines=1)
    first = encode_276(b, partner, InMemoryControlNumbers(start=101), now=NOW)
    again = encode_276(b, partner, InMemoryControlNumbers(start=900), now=NOW)
    assert_valid_276(first)
    traces = [x[2] for x in segs(first) if x[0] == "TRN"]
    assert traces == ["P000000000", "P000000001", "P000000002"]
    assert traces == [x[2] for x in segs(again) if x[0] == "TRN"]  # the claim decides, not the envelope
    assert [x[1] for x in segs(first) if x[0] == "ST"] == ["276"] * 3
    assert len(decode(first).transactions) == 3


@pytest.mark.parametrize("change, loop, segment", [
    (lambda c: c.update(status="draft"), "2200D", "TRN"),
    (lambda c: c.update(extension=[{"url": vocabulary.CLAIM_LIFECYCLE, "valueCode": "queued"}]), "2200D", "TRN"),
    (lambda c: c.update(identifier=[]), "2200D", "TRN"),
    (lambda c: c.update(insurer={"reference": "Organization/nowhere"}), None, None),
])
def test_276_refuses_what_cannot_be_asked_about(partner, numbers, change, loop, segment):
    b = B.medicare_ot_bundle()
    change(b["entry"][0]["resource"])
    with pytest.raises(EncodeError) as exc:
        encode_276(b, partner, numbers, now=NOW)
    assert "claim claim1" in exc.value.message
    assert (exc.value.loop_id, exc.value.segment_id) == (loop, segment)


def test_276_needs_a_member_id(partner, numbers):
    b = B.medicare_ot_bundle()
    cov = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Coverage")
    del cov["subscriberId"]
    with pytest.raises(EncodeError) as exc:
        encode_276(b, partner, numbers, now=NOW)
    assert (exc.value.loop_id, exc.value.segment_id, exc.value.element_position) == ("2100D", "NM1", 9)


# -- 277 in ----------------------------------------------------------------------------------

HEAD = ["BHT*0010*08*STAT20250301*20250301*0915*DG",
        "HL*1**20*1", "NM1*PR*2*ACME HEALTH PLAN*****PI*60054",
        "HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*THERABRIDGE",
        "HL*3*2*19*1", "NM1*1P*2*BRIGHT HANDS OCCUPATIONAL THERAPY*****XX*1234567893"]


def subscriber(hl: int, member: str, last: str, first: str, *, children: bool = False) -> list[str]:
    return [f"HL*{hl}*3*22*{1 if children else 0}", f"NM1*IL*1*{last}*{first}****MI*{member}"]


def claim_loop(trace: str, stc: str, *, payer_claim: str | None = None, dates: str = "D8*20250201",
               extra: list[str] | None = None) -> list[str]:
    out = [f"TRN*2*{trace}", f"STC*{stc}"]
    if payer_claim:
        out.append(f"REF*1K*{payer_claim}")
    out += [f"REF*EJ*{trace}", f"DTP*472*{dates}", *(extra or [])]
    return out


def x277(*bodies: list[str], isa13: int = 501) -> str:
    return interchange("HN", "005010X212", "277", list(bodies), isa13=isa13, gs06=isa13, sender="ACMEPLAN")


PAID = claim_loop("PCN20250201C", "F1:65*20250228**190*152*20250227*ACH*20250228*EFT778899",
                  payer_claim="22025032000456")
DENIED = claim_loop("PCN20250202D", "F2:585*20250226**135*0", payer_claim="22025032000457")
PENDED = claim_loop("PCN20250203P", "P1:20*20250225**60")
NOT_FOUND = claim_loop("PCN20250204N", "A4:35*20250301**80")
SEARCH_FAILED = claim_loop("PCN20250205S", "D0:35*20250301")


def _by_trace(text: str) -> dict:
    return {c.trace: c for c in decode(text).claim_statuses}


def test_paid_claim():
    c = _by_trace(x277(HEAD + subscriber(4, "W123456789", "DOE", "JANE") + PAID))["PCN20250201C"]
    assert (c.lifecycle, c.current.category, c.current.code) == ("paid", "F1", "65")
    assert (c.billed, c.paid, c.adjudication_date, c.payment_method, c.check_date, c.check_number) == (
        Decimal("190"), Decimal("152"), "2025-02-27", "ACH", "2025-02-28", "EFT778899")
    assert (c.patient_control_number, c.payer_claim_number, c.service_start, c.member_id, c.provider_npi,
            c.payer_id) == ("PCN20250201C", "22025032000456", "2025-02-01", "W123456789", "1234567893", "60054")
    assert c.action == "expect the 835"


def test_denied_pended_and_not_found():
    found = _by_trace(x277(HEAD + subscriber(4, "W123456789", "DOE", "JANE") + DENIED + PENDED + NOT_FOUND
                           + SEARCH_FAILED))
    assert {t: c.lifecycle for t, c in found.items()} == {
        "PCN20250202D": "denied", "PCN20250203P": "pending", "PCN20250204N": "not-found",
        "PCN20250205S": "not-found"}
    assert found["PCN20250202D"].paid == Decimal("0") and found["PCN20250203P"].paid is None


def test_status_code_35_means_not_found_whatever_the_category():
    c = _by_trace(x277(HEAD + subscriber(4, "W1", "DOE", "JANE") + claim_loop("PCN1", "A7:35")))["PCN1"]
    assert c.lifecycle == "not-found"
    c = _by_trace(x277(HEAD + subscriber(4, "W1", "DOE", "JANE") + claim_loop("PCN1", "A7:21")))["PCN1"]
    assert c.lifecycle == "rejected"


def test_many_claims_subscribers_dependents_and_lines():
    body = (HEAD + subscriber(4, "W123456789", "DOE", "JOHN") + PAID + DENIED
            + subscriber(5, "X99887766", "ROE", "RICHARD", children=True)
            + ["HL*6*5*23", "NM1*QC*1*ROE*SAM"]
            + claim_loop("PCN20250206L", "F1:65*20250228**250*180", dates="RD8*20250203-20250210",
                         extra=["SVC*HC:97110:GP*150*120****2", "STC*F1:65*20250228", "REF*FJ*LINE0001",
                                "DTP*472*D8*20250203",
                                "SVC*HC:97140:GP:59*100*60****1", "STC*F1:65*20250228", "REF*FJ*LINE0002",
                                "DTP*472*D8*20250210"]))
    result = decode(x277(body))
    claims = result.claim_statuses
    assert [c.trace for c in claims] == ["PCN20250201C", "PCN20250202D", "PCN20250206L"]
    assert [c.loop for c in claims] == ["2200D", "2200D", "2200E"]
    dep = claims[2]
    assert (dep.member_id, dep.patient_last, dep.patient_first) == ("X99887766", "ROE", "SAM")
    assert (dep.service_start, dep.service_end) == ("2025-02-03", "2025-02-10")
    assert [(ln.code, ln.modifiers, ln.charge, ln.paid, ln.units, ln.line_control_number) for ln in dep.lines] == [
        ("97110", ["GP"], Decimal("150"), Decimal("120"), Decimal("2"), "LINE0001"),
        ("97140", ["GP", "59"], Decimal("100"), Decimal("60"), Decimal("1"), "LINE0002")]

    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    crs = resources(bundle, "ClaimResponse")
    assert [cr["outcome"] for cr in crs] == ["complete", "complete", "complete"]
    assert [cr["extension"][0]["valueCoding"]["code"] for cr in crs] == ["paid", "denied", "paid"]
    assert [i["itemSequence"] for i in crs[2]["item"]] == [1, 2]


def test_claim_response_shape():
    bundle = decode(x277(HEAD + subscriber(4, "W123456789", "DOE", "JANE") + PAID + NOT_FOUND)).to_fhir()
    assert_valid_bundle(bundle)
    paid, missing = resources(bundle, "ClaimResponse")
    assert paid["status"] == "active" and paid["use"] == "claim"
    assert paid["type"]["coding"][0]["code"] == "professional"
    assert paid["identifier"] == [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": "22025032000456"},
                                  {"system": vocabulary.CLAIM_STATUS_TRACE, "value": "PCN20250201C"}]
    assert paid["request"]["identifier"] == {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": "PCN20250201C"}
    assert paid["insurer"]["identifier"]["value"] == "60054" and paid["requestor"]["identifier"]["value"] == "1234567893"
    assert paid["created"] == "2025-03-01" and paid["outcome"] == "complete"
    assert paid["disposition"].startswith("F1:65 Finalized, payment — Claim or line has been paid")
    assert paid["payment"] == {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                                                    "code": "complete"}]},
                               "amount": {"value": 152.0, "currency": "USD"}, "date": "2025-02-28",
                               "identifier": {"system": vocabulary.PAYMENT_TRACE, "value": "EFT778899"}}
    assert [(t["category"]["coding"][0]["code"], t["amount"]["value"]) for t in paid["total"]] == [
        ("submitted", 190.0), ("benefit", 152.0)]
    stc = next(e for e in paid["extension"] if e["url"] == vocabulary.X12_STC_STATUS)
    assert [c["code"] for c in stc["extension"][0]["valueCodeableConcept"]["coding"]] == ["F1", "65"]
    assert stc["extension"][1] == {"url": "effectiveDate", "valueDate": "2025-02-28"}
    assert "error" not in paid

    assert missing["outcome"] == "error" and missing["extension"][0]["valueCoding"]["code"] == "not-found"
    assert missing["error"][0]["code"]["coding"][0]["code"] == "A4"
    assert "payment" not in missing and "identifier" in missing


def test_ids_survive_a_new_envelope_and_follow_the_content():
    body = HEAD + subscriber(4, "W123456789", "DOE", "JANE") + PAID + DENIED
    ids1 = [e["resource"]["id"] for e in decode(x277(body, isa13=501)).to_fhir()["entry"]]
    ids2 = [e["resource"]["id"] for e in decode(x277(body, isa13=777)).to_fhir()["entry"]]
    assert ids1 == ids2 and len(set(ids1)) == 2
    later = [x.replace("F2:585*20250226", "F2:585*20250227") for x in body]
    assert [e["resource"]["id"] for e in decode(x277(later)).to_fhir()["entry"]][1] != ids1[1]


def test_refused_provider_level_becomes_an_operation_outcome():
    body = HEAD + ["TRN*1*PROV0001", "STC*A7:562:1P*20250301*U"]
    bundle = decode(x277(body)).to_fhir()
    outcome = resources(bundle, "OperationOutcome")[0]
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["diagnostics"].startswith("277 2200C")
    assert not resources(bundle, "ClaimResponse")


def test_277ca_still_decodes_as_a_277ca(examples):
    """The two 277s share ST01: the version picks the decoder."""
    result = decode(examples / "277ca_ot_claim_ack.x12")
    assert result.claim_acknowledgments and not result.claim_statuses


# -- round trip: our 276, a payer's 277 for its traces ----------------------------------------

def sandbox_277(inquiries: list[StatusInquiry], answers: dict[str, str]) -> str:
    """What a payer sends back for our 276: per inquiry, echo TRN02, REF*1K and REF*EJ and answer
    with the STC given for its trace (one subscriber level per inquiry)."""
    body = ["BHT*0010*08*SBX0001*20250301*0800*DG", "HL*1**20*1",
            f"NM1*PR*2*SANDBOX PAYER*****PI*{inquiries[0].payer_id}", "HL*2*1*21*1",
            "NM1*41*2*THERABRIDGE*****46*THERABRIDGE", "HL*3*2*19*1",
            f"NM1*1P*2*PROVIDER*****XX*{inquiries[0].provider_npi}"]
    hl = 4
    for q in inquiries:
        body += [f"HL*{hl}*3*22*{1 if q.dependent else 0}", f"NM1*IL*1*{q.subscriber_last}*X****MI*{q.member_id}"]
        if q.dependent:
            body += [f"HL*{hl + 1}*{hl}*23", f"NM1*QC*1*{q.patient_last}*{q.patient_first}"]
            hl += 1
        hl += 1
        start, end = q.service_start.replace("-", ""), q.service_end.replace("-", "")  # type: ignore[union-attr]
        body += [f"TRN*2*{q.trace}", f"STC*{answers[q.trace]}**{q.billed}", f"REF*1K*PAYER{q.trace[-6:]}",
                 f"REF*EJ*{q.patient_control_number}",
                 f"DTP*472*{'D8*' + start if start == end else 'RD8*' + start + '-' + end}"]
    return x277(body)


def test_round_trip_our_276_answered_by_a_277(partner, numbers):
    medicare, commercial = B.medicare_ot_bundle(), B.commercial_bundle()
    both = B.bundle(*[e["resource"] for e in medicare["entry"]],
                    *[e["resource"] for e in commercial["entry"] if e["resource"]["resourceType"] in
                      ("Claim", "Coverage", "RelatedPerson") or e["resource"]["id"] == "acme"])
    claims = {e["resource"]["identifier"][0]["value"]: e["resource"] for e in both["entry"]
              if e["resource"]["resourceType"] == "Claim"}
    out = encode_276(both, partner, numbers, now=NOW)
    assert_valid_276(out)
    inquiries = [q for t in decode(out).transactions for q in t.inquiries]
    assert sorted(q.trace for q in inquiries) == sorted(claims)

    by_payer: dict[str, list[StatusInquiry]] = {}
    for q in inquiries:
        by_payer.setdefault(q.payer_id, []).append(q)
    answers = {"PCN20250114A": "F1:65*20250301", "PCN20250201C": "P3:317*20250301"}
    statuses = [c for qs in by_payer.values() for c in decode(sandbox_277(qs, answers)).claim_statuses]
    assert {c.claim_key: c.lifecycle for c in statuses} == {"PCN20250114A": "paid", "PCN20250201C": "pending"}
    assert {c.claim_key: c.billed for c in statuses} == {"PCN20250114A": Decimal("310"),
                                                        "PCN20250201C": Decimal("190")}
    dependent = next(c for c in statuses if c.trace == "PCN20250201C")
    assert dependent.loop == "2200E" and dependent.patient_last == "DOE"

    text = sandbox_277(by_payer["00952"], answers)
    bundle = decode(text).to_fhir(claims=claims)
    assert_valid_bundle(bundle)
    cr = resources(bundle, "ClaimResponse")[0]
    assert cr["request"]["reference"] == "Claim/claim1" and cr["patient"] == {"reference": "Patient/pat1"}


# -- malformed 277 -----------------------------------------------------------------------------

def _raises(text: str, cls: type[X12Error]) -> X12Error:
    with pytest.raises(cls) as exc:
        decode(text)
    errs = validate(text, use_pyx12=False)
    assert errs and isinstance(errs[0], cls)
    return exc.value


def test_claim_without_stc():
    body = HEAD + subscriber(4, "W1", "DOE", "JANE") + ["TRN*2*PCN1", "REF*EJ*PCN1"]
    err = _raises(x277(body), StructureError)
    assert (err.segment_id, err.loop_id) == ("STC", "2200D") and "no STC" in err.message


def test_bad_stc_date_and_amount():
    err = _raises(x277(HEAD + subscriber(4, "W1", "DOE", "JANE") + claim_loop("PCN1", "F1:65*20251340**10")),
                  DataElementError)
    assert (err.segment_id, err.element_position, err.code) == ("STC", 2, "8")
    err = _raises(x277(HEAD + subscriber(4, "W1", "DOE", "JANE") + claim_loop("PCN1", "F1:65*20250301**1O")),
                  DataElementError)
    assert (err.segment_id, err.element_position) == ("STC", 4)


@pytest.mark.parametrize("body, segment, loop", [
    (HEAD[:5] + ["HL*3*2*22*0", "NM1*IL*1*DOE*JANE****MI*W1"] + claim_loop("PCN1", "F1:65"), "HL", "2000C"),
    (HEAD + ["HL*4*3*PT*0"], "HL", "2000"),
    (HEAD + ["HL*4*3*22*0", "TRN*2*PCN1", "STC*F1:65"], "TRN", "2000D"),
    (HEAD + subscriber(4, "W1", "DOE", "JANE") + ["STC*F1:65"], "STC", "2100D"),
    (HEAD + subscriber(4, "W1", "DOE", "JANE") + ["TRN*2*PCN1", "SVC*HC:97110*10", "STC*F1:65"], "SVC", "2200D"),
    (HEAD + subscriber(4, "W1", "DOE", "JANE") + ["TRN*2*", "STC*F1:65"], "TRN", "2200D"),
    (HEAD + subscriber(4, "W1", "DOE", "JANE") + ["TRN*2*PCN1", "STC*:65"], "STC", "2200D"),
    (["HL*1**20*1", "BHT*0010*08*X*20250301"], "BHT", "2000A"),
    (HEAD + subscriber(4, "W1", "DOE", "JANE") + claim_loop("PCN1", "F1:65") + ["CLP*PCN1*1*10*10"], "CLP", "2200D"),
])
def test_structure_errors(body, segment, loop):
    err = _raises(x277(body), StructureError)
    assert (err.segment_id, err.loop_id) == (segment, loop)
    assert err.set_position is not None and err.segment_index is not None


def test_errors_carry_no_member_data():
    body = HEAD + subscriber(4, "SECRETMEMBER", "PRIVATE", "PERSON") + ["TRN*2*PCNSECRET", "REF*EJ*PCNSECRET"]
    with pytest.raises(X12Error) as exc:
        decode(x277(body))
    text = json.dumps(exc.value.to_dict()) + str(exc.value)
    assert "SECRETMEMBER" not in text and "PRIVATE" not in text and "PCNSECRET" not in text


def test_malformed_276_is_caught_by_validate(partner, numbers):
    out = encode_276(B.medicare_ot_bundle(), partner, numbers, now=NOW).decode()
    swapped = out.replace("HL*3*2*19*1~\n", "HL*3*1*19*1~\n")  # provider under the payer, not the receiver
    errs = validate(swapped)
    assert errs and isinstance(errs[0], StructureError) and errs[0].segment_id == "HL"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("*46*THERABRIDGE~", "*XX*THERABRIDGE~", "(NM108)"),  # 2100B takes the ETIN qualifier only
    ("DMG*D8*19800515*F~", "DMG*D8*19800515*U~", "(DMG03)"),  # the guide allows F and M
    ("DMG*D8*19800515*F~", "DMG*D8*19800515*F*M~", "(DMG04) is marked as Not Used"),
    ("DTP*472*D8*20250201~", "DTP*472*D8*20250231~", "invalid date"),
    ("DTP*472*D8*20250201~", "DTP*472*D8*20250201~SVC*HC:97530*190~", "Mandatory segment"),  # 2210 needs DTP
])
def test_pyx12_checks_a_276_against_the_guide(partner, numbers, old, new, expected):
    """What our own walk does not look at (element codes and usage, dates, line loops), pyx12 catches
    through the product's 005010X212 map."""
    out = encode_276(B.commercial_bundle(), partner, numbers, now=NOW).decode().replace("~\n", "~")
    assert pyx12_errors(out) == []
    broken = out.replace(old, new, 1)
    assert broken != out
    messages = [str(e) for e in pyx12_errors(broken)]
    assert any(expected in m for m in messages), messages


def test_276_with_service_lines_passes_pyx12(partner, numbers):
    """A payer's own 276 may ask about lines (2210); the map takes them as the guide shapes them."""
    out = encode_276(B.commercial_bundle(), partner, numbers, now=NOW).decode().replace("~\n", "~")
    lines = "SVC*HC:97530:GO*100*****2~REF*FJ*1~DTP*472*D8*20250201~SVC*NU:0430*90~DTP*472*D8*20250201~"
    with_lines = out.replace("DTP*472*D8*20250201~", "DTP*472*D8*20250201~" + lines, 1)
    count = with_lines.count("~", with_lines.index("ST*276"), with_lines.index("SE*")) + 1
    with_lines = re.sub(r"SE\*\d+\*", f"SE*{count}*", with_lines)
    assert pyx12_errors(with_lines) == []
    assert validate(with_lines) == []


def test_276_leaves_out_a_gender_the_guide_has_no_code_for(partner, numbers):
    bundle = B.commercial_bundle()
    people = [e["resource"] for e in bundle["entry"] if "gender" in e["resource"]]
    for person, gender in zip(people, ("unknown", "other"), strict=True):  # the subscriber and the patient
        person["gender"] = gender
    out = encode_276(bundle, partner, numbers, now=NOW)
    assert_valid_276(out)
    assert [s for s in body_of(out) if s[0] == "DMG"] == [["DMG", "D8", "19790202"], ["DMG", "D8", "19800515"]]


# -- CLI ------------------------------------------------------------------------------------

def run(*args: str):
    return runner.invoke(app, ["x12", *args])


def test_cli_encode_276_and_decode_277(tmp_path: Path):
    src = tmp_path / "claims.json"
    src.write_text(json.dumps(B.medicare_ot_bundle()))
    res = run("encode", str(src), "--transaction", "276", "--control-number", "42")
    assert res.exit_code == 0, res.output
    assert "ST*276*" in res.stdout and "TRN*1*PCN20250114A~" in res.stdout and "*000000042*" in res.stdout
    out = tmp_path / "status.x12"
    out.write_text(res.stdout)
    assert run("validate", str(out)).stdout.strip() == "status.x12: OK"

    default = run("encode", str(src))  # the default is unchanged: Claims → 837P
    assert default.exit_code == 0 and "ST*837*" in default.stdout

    answer = tmp_path / "status.277"
    answer.write_text(x277(HEAD + subscriber(4, "1EG4TE5MK73", "DOE", "JANE") + claim_loop("PCN20250114A", "F2:585")))
    res = run("decode", str(answer), "--compact")
    assert res.exit_code == 0
    bundle = json.loads(res.stdout)
    assert resources(bundle, "ClaimResponse")[0]["extension"][0]["valueCoding"]["code"] == "denied"


def test_cli_transaction_errors(tmp_path: Path):
    src = tmp_path / "elig.json"
    src.write_text(json.dumps(B.eligibility_bundle()))
    res = run("encode", str(src), "--transaction", "276")  # no Claim to ask about
    assert res.exit_code == 1 and json.loads(res.stdout)["resourceType"] == "OperationOutcome"
    res = run("encode", str(src), "--transaction", "835")
    assert res.exit_code == 2 and "--transaction" in json.loads(res.stdout)["issue"][0]["diagnostics"]
