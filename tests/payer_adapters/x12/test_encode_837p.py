"""837P encoding: every generated file passes pyx12 with zero errors, and the elements come from
where the README says they do."""
from __future__ import annotations

import pytest

from payer_adapters.x12 import EncodeError, decode, encode_837p, validate

from . import builders as B
from .conftest import NOW
from .pyx12_check import assert_pyx12_ok


def segs(x12: bytes) -> list[list[str]]:
    return [s.strip().split("*") for s in x12.decode().split("~") if s.strip()]


def find(x12: bytes, tag: str, first: str | None = None) -> list[list[str]]:
    return [s for s in segs(x12) if s[0] == tag and (first is None or s[1] == first)]


BUNDLES = {
    "medicare_ot": B.medicare_ot_bundle,
    "commercial": B.commercial_bundle,
    "workers_comp": B.workers_comp_bundle,
    "replacement": B.replacement_bundle,
    "void": B.void_bundle,
}


@pytest.mark.parametrize("name", BUNDLES)
def test_pyx12_accepts_every_scenario(name, partner, numbers):
    out = encode_837p(BUNDLES[name](), partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    assert validate(out, use_pyx12=False) == []


def test_medicare_claim_elements(partner, numbers):
    out = encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    clm = find(out, "CLM")[0]
    assert clm[1] == "PCN20250114A"
    assert clm[2] == "310"  # 150 + 100 + 60
    assert clm[5] == "11:B:1"
    assert find(out, "SBR")[0] == ["SBR", "P", "18", "", "", "", "", "", "", "MB"]
    assert find(out, "HI")[0] == ["HI", "ABK:I69351", "ABF:R278"]
    sv1 = find(out, "SV1")
    assert [s[1] for s in sv1] == ["HC:97165:GO", "HC:97110:GO:KX", "HC:97530:GO:CO:KX"]
    assert sv1[0][7] == "1:2" and sv1[1][7] == "1"
    assert [s[2] for s in find(out, "REF", "6R")] == ["A1B2C3D401", "A1B2C3D402", "A1B2C3D403"]
    assert find(out, "NM1", "DN")[0][9] == "1245319599"
    assert find(out, "NM1", "82")[0][9] == "1982736450"
    assert find(out, "PRV") == [["PRV", "BI", "PXC", "225X00000X"], ["PRV", "PE", "PXC", "225X00000X"]]
    assert find(out, "DTP", "454")[0][3] == "20250114"
    assert find(out, "REF", "EI")[0][2] == "371234567"
    assert not find(out, "PAT") and not find(out, "NM1", "87")


def test_workers_comp_uses_patient_loop_and_employer(partner, numbers):
    out = encode_837p(B.workers_comp_bundle(), partner, numbers, now=NOW)
    s = segs(out)
    tags = [x[0] + ("*" + x[1] if x[0] in ("NM1", "REF", "HL") else "") for x in s]
    assert find(out, "SBR")[0][9] == "WC" and find(out, "SBR")[0][2] == ""
    assert find(out, "NM1", "IL")[0][2:4] == ["2", "ACME MANUFACTURING INC"]
    assert find(out, "PAT")[0] == ["PAT", "20"]
    # REF*Y4 sits in 2010CA, i.e. after NM1*QC and before CLM
    assert tags.index("NM1*QC") < tags.index("REF*Y4") < tags.index("CLM")
    assert find(out, "CLM")[0][11] == "EM"
    assert find(out, "DTP", "439")[0][3] == "20250210"
    assert find(out, "PWK")[0] == ["PWK", "OZ", "EL", "", "", "AC", "ATT20250303001"]


def test_workers_comp_employer_policy_holder_in_2010ba_and_worker_in_2010ca(partner, numbers):
    """Coverage.policyHolder = the employer Organization: 2010BA is the employer (non-person,
    NM109 the member id), 2000C/2010CA the injured worker with PAT01 20, address and DMG."""
    out = encode_837p(B.workers_comp_bundle(), partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    s = segs(out)
    tags = [x[0] + ("*" + x[1] if x[0] in ("NM1", "HL") else "") for x in s]
    sub = s[tags.index("HL*2"):tags.index("HL*3")]
    assert sub[0] == ["HL", "2", "1", "22", "1"] and sub[1][:3] == ["SBR", "P", ""] and sub[1][9] == "WC"
    assert sub[2] == ["NM1", "IL", "2", "ACME MANUFACTURING INC", "", "", "", "", "MI", "WCPOL778899"]
    assert [x[0] for x in sub[3:]] == ["NM1"] and sub[3][1] == "PR"  # no N3/N4/DMG for the employer
    pat = s[tags.index("HL*3"):tags.index("CLM")]
    assert pat[0] == ["HL", "3", "2", "23", "0"] and pat[1] == ["PAT", "20"]
    assert pat[2] == ["NM1", "QC", "1", "DOE", "JANE"]
    assert [x[0] for x in pat[3:]] == ["N3", "N4", "DMG", "REF"]
    assert pat[5] == ["DMG", "D8", "19480312", "F"] and pat[6] == ["REF", "Y4", "WC2025000123"]
    # our decoder (the sandbox payer's reader) gets the same picture back
    claim = decode(out).transactions[0].claims[0]
    assert (claim.filing_indicator, claim.subscriber_entity, claim.subscriber_name) == ("WC", "2", "ACME MANUFACTURING INC")
    assert (claim.member_id, claim.patient_relationship, claim.patient_last, claim.patient_first) == \
        ("WCPOL778899", "20", "DOE", "JANE")


def test_workers_comp_without_member_id_sends_the_comp_claim_number(partner, numbers):
    b = B.workers_comp_bundle()
    cov = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Coverage")
    del cov["subscriberId"]
    out = encode_837p(b, partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    assert find(out, "NM1", "IL")[0][8:] == ["MI", "WC2025000123"]


def test_decoded_subscriber_is_the_patient_outside_workers_comp(partner, numbers):
    claim = decode(encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW)).transactions[0].claims[0]
    assert (claim.subscriber_entity, claim.patient_relationship, claim.patient_last) == ("1", "", "DOE")
    dep = decode(encode_837p(B.commercial_bundle(), partner, numbers, now=NOW)).transactions[0].claims[0]
    assert (dep.subscriber_name, dep.patient_relationship, dep.patient_first) == ("DOE", "01", "JANE")


def test_replacement_and_void(partner, numbers):
    rep = encode_837p(B.replacement_bundle(), partner, numbers, now=NOW)
    void = encode_837p(B.void_bundle(), partner, numbers, now=NOW)
    assert find(rep, "CLM")[0][5] == "11:B:7" and find(rep, "REF", "F8")[0][2] == "22025031000001"
    assert find(void, "CLM")[0][5] == "11:B:8" and find(void, "REF", "F8")[0][2] == "22025031000001"


def test_commercial_dependent_prior_auth_and_pay_to(partner, numbers):
    out = encode_837p(B.commercial_bundle(), partner, numbers, now=NOW)
    assert find(out, "REF", "G1")[0][2] == "AUTH778899"
    assert find(out, "SBR")[0][1:4] == ["P", "", "GRP1001"]
    assert find(out, "PAT")[0] == ["PAT", "01"]
    assert find(out, "NM1", "IL")[0][3:5] == ["DOE", "JOHN"]
    assert find(out, "NM1", "87")[0] == ["NM1", "87", "2"]
    n3 = find(out, "N3")
    assert n3[0] == ["N3", "100 MAIN STREET"] and n3[1] == ["N3", "PO BOX 4411"]
    assert find(out, "SV1")[1][1] == "HC:97140:GP:59"
    assert not find(out, "NM1", "DN")


def test_many_claims_grouped_by_billing_provider_and_payer(partner, numbers):
    b = B.medicare_ot_bundle()
    commercial = B.commercial_bundle(cid="claimC")
    extra = [e for e in commercial["entry"] if e["resource"]["resourceType"] != "Organization"
             or e["resource"]["id"] != "billing"]
    extra_ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}
    b["entry"] += [e for e in extra if (e["resource"]["resourceType"], e["resource"]["id"]) not in extra_ids]
    second = B.claim(cid="claim2", pcn="PCN20250115B")
    b["entry"].append({"resource": second})
    out = encode_837p(b, partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    sts = find(out, "ST")
    assert len(sts) == 2  # Medicare (two claims) and Acme
    assert find(out, "GE")[0][1] == "2" and find(out, "IEA")[0][1] == "1"
    assert len(find(out, "CLM")) == 3
    result = decode(out)
    assert [[c.patient_control_number for c in t.claims] for t in result.transactions] == [
        ["PCN20250114A", "PCN20250115B"], ["PCN20250201C"]]


def test_control_numbers_increase_per_file(partner, numbers):
    a = encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    b = encode_837p(B.medicare_ot_bundle(), partner, numbers, now=NOW)
    isa_a, isa_b = find(a, "ISA")[0][13], find(b, "ISA")[0][13]
    assert int(isa_b) > int(isa_a)
    assert find(a, "IEA")[0][2] == isa_a and find(a, "GE")[0][2] == find(a, "GS")[0][6]
    assert find(b, "ST")[0][2] != find(a, "ST")[0][2]


def test_separators_and_usage_from_partner(numbers):
    from dataclasses import replace

    from payer_adapters.x12 import load_partner
    from payer_adapters.x12.segments import Separators

    p = replace(load_partner("sandbox"), usage_indicator="P", newline_after_segment=False,
                separators=Separators("|", "!", ">", "\\"))
    out = encode_837p(B.medicare_ot_bundle(), p, numbers, now=NOW).decode()
    assert "\n" not in out and out[3] == "|" and out[105] == "\\"
    assert out.split("|")[15] == "P"
    assert "HC>97110>GO>KX" in out
    assert_pyx12_ok(out)
    assert decode(out).transactions[0].claims[0].lines[1].modifiers == ["GO", "KX"]


@pytest.mark.parametrize("mutate, loop, segment", [
    (lambda c: c.__setitem__("identifier", []), "2300", "CLM"),
    (lambda c: c["identifier"][0].__setitem__("value", "X" * 21), "2300", "CLM"),
    (lambda c: c["identifier"][0].__setitem__("value", "pcn*1"), "2300", "CLM"),
    (lambda c: c.__setitem__("diagnosis", []), "2300", "HI"),
    (lambda c: c["item"][0].pop("servicedDate"), "2400", "DTP"),
    (lambda c: c["total"].__setitem__("value", 999), "2300", "CLM"),
])
def test_encode_errors_name_loop_and_segment(mutate, loop, segment, partner, numbers):
    b = B.medicare_ot_bundle()
    mutate(b["entry"][0]["resource"])
    with pytest.raises(EncodeError) as exc:
        encode_837p(b, partner, numbers, now=NOW)
    assert exc.value.loop_id == loop and exc.value.segment_id == segment
    assert "JANE" not in str(exc.value).upper()


def test_void_without_original_reference_is_refused(partner, numbers):
    b = B.medicare_ot_bundle()
    b["entry"][0]["resource"]["status"] = "cancelled"
    with pytest.raises(EncodeError, match="payer claim control number"):
        encode_837p(b, partner, numbers, now=NOW)


def test_separator_characters_in_data_are_removed(partner, numbers):
    b = B.medicare_ot_bundle()
    for e in b["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["name"][0]["family"] = "O'Neil*Smith~Jr:^"
    out = encode_837p(b, partner, numbers, now=NOW)
    assert find(out, "NM1", "IL")[0][3] == "O'NEIL SMITH JR"
    assert_pyx12_ok(out)


def test_referring_from_service_request_and_last_seen_date(partner, numbers):
    b = B.medicare_ot_bundle()
    claim = b["entry"][0]["resource"]
    claim["careTeam"] = claim["careTeam"][:1]
    claim["referral"] = {"reference": "ServiceRequest/plan-of-care"}
    claim["supportingInfo"].append({"sequence": 2, "category": {"coding": [
        {"system": B.CLAIM_DATE, "code": "last-seen"}]}, "timingDate": "2025-01-02"})
    b["entry"].append({"resource": {
        "resourceType": "ServiceRequest", "id": "plan-of-care", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/pat1"}, "requester": {"reference": "Practitioner/certifying"}}})
    out = encode_837p(b, partner, numbers, now=NOW)
    assert find(out, "NM1", "DN")[0][3:5] == ["SMITH", "JOHN"]
    dtp = [s[1] for s in find(out, "DTP")]
    assert dtp[:2] == ["454", "304"]
    assert_pyx12_ok(out)


def test_po_box_only_billing_address_is_refused(partner, numbers):
    b = B.medicare_ot_bundle()
    org = next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "billing")
    org["address"] = [{"line": ["P.O. Box 12"], "city": "Springfield", "state": "IL", "postalCode": "62701"}]
    with pytest.raises(EncodeError) as exc:
        encode_837p(b, partner, numbers, now=NOW)
    assert exc.value.loop_id == "2010AA"


def test_line_rendered_by_another_therapist_gets_2420a(partner, numbers):
    b = B.medicare_ot_bundle()
    claim = b["entry"][0]["resource"]
    claim["careTeam"].append({"sequence": 3, "provider": {"reference": "Practitioner/ota"},
                              "role": {"coding": [{"system": B.ROLE, "code": "primary"}]},
                              "qualification": {"coding": [{"system": "http://nucc.org/provider-taxonomy",
                                                            "code": "225XR0403X"}]}})
    claim["item"][2]["careTeamSequence"] = [3]
    b["entry"].append({"resource": B.practitioner("ota", "Lee", "Ana", "1558444216")})
    out = encode_837p(b, partner, numbers, now=NOW)
    s = segs(out)
    tags = [x[0] + ("*" + x[1] if x[0] in ("NM1", "REF", "LX") else "") for x in s]
    assert tags.count("NM1*82") == 2
    assert tags.index("LX*3") < tags.index("REF*6R", tags.index("LX*3")) < len(tags) - 1 - tags[::-1].index("NM1*82")
    assert find(out, "NM1", "82")[1][9] == "1558444216" and find(out, "PRV")[-1][3] == "225XR0403X"
    assert_pyx12_ok(out)
