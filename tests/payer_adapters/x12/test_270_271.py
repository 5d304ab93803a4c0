"""270 out and 271 in."""
from __future__ import annotations

import pytest

from payer_adapters.x12 import EncodeError, decode, encode_270, validate

from . import builders as B
from .conftest import NOW
from .fhir_check import assert_valid_bundle, resources


def segs(x12: bytes) -> list[list[str]]:
    return [s.strip().split("*") for s in x12.decode().split("~") if s.strip()]


def test_subscriber_inquiry_for_ot_and_pt(partner, numbers):
    out = encode_270(B.eligibility_bundle(service_types=("AD", "PT")), partner, numbers, now=NOW)
    s = segs(out)
    tags = [x[0] for x in s]
    assert tags == ["ISA", "GS", "ST", "BHT", "HL", "NM1", "HL", "NM1", "HL", "TRN", "NM1", "DMG", "DTP", "EQ",
                    "SE", "GE", "IEA"]
    assert s[1][1] == "HS" and s[1][8] == "005010X279A1" and s[2][3] == "005010X279A1"
    assert s[9] == ["TRN", "1", "ELIG0001", "9THERABRDG"]
    assert s[10][1] == "IL" and s[10][9] == "W123456789"
    assert s[12] == ["DTP", "291", "D8", "20250110"]
    assert s[13] == ["EQ", "AD^PT"]
    assert s[14][1] == "13"
    assert validate(out) == []  # structural only: pyx12 has no 5010 270 map


def test_dependent_inquiry(partner, numbers):
    out = encode_270(B.eligibility_bundle(dependent=True), partner, numbers, now=NOW)
    s = segs(out)
    hl = [x for x in s if x[0] == "HL"]
    assert hl[-1] == ["HL", "4", "3", "23", "0"] and hl[-2][4] == "1"
    nm1 = [x for x in s if x[0] == "NM1"]
    assert nm1[2][1:5] == ["IL", "1", "DOE", "JOHN"] and nm1[3][1:5] == ["03", "1", "DOE", "JANE"]
    assert validate(out) == []


@pytest.mark.parametrize("st", ["AD", "PT", "AF", "30"])
def test_each_therapy_service_type(st, partner, numbers):
    out = encode_270(B.eligibility_bundle(service_types=(st,)), partner, numbers, now=NOW)
    assert ["EQ", st] in segs(out)


def test_trace_number_required(partner, numbers):
    b = B.eligibility_bundle()
    b["entry"][0]["resource"]["identifier"] = []
    with pytest.raises(EncodeError) as exc:
        encode_270(b, partner, numbers, now=NOW)
    assert exc.value.segment_id == "TRN" and exc.value.loop_id == "2000C"


def _271(body: str) -> str:
    segments = [
        "ST*271*0001*005010X279A1", "BHT*0022*11*ELIG1*20250110*0901",
        "HL*1**20*1", "NM1*PR*2*ACME HEALTH PLAN*****PI*60054",
        "HL*2*1*21*1", "NM1*1P*2*BRIGHT HANDS*****XX*1234567893",
        "HL*3*2*22*0", "TRN*2*ELIG0002*9THERABRDG", "NM1*IL*1*DOE*JANE****MI*W1",
        *[x for x in body.split("~") if x],
    ]
    st = "~\n".join(segments) + f"~\nSE*{len(segments) + 1}*0001~\n"
    isa = "ISA*00*          *00*          *ZZ*ACMEHEALTH     *ZZ*THERABRIDGE    *250110*0901*^*00501*000000301*0*T*:~\n"
    return isa + "GS*HB*ACMEHEALTH*THERABRIDGE*20250110*0901*301*X*005010X279A1~\n" + st + "GE*1*301~\nIEA*1*000000301~\n"


def test_271_rich_benefits():
    text = _271("EB*1*IND*AF^PT**SILVER HMO~EB*G*IND*30***23*3000~EB*G*IND*30***29*2750~"
                "EB*F*IND*PT***29***VS*5~EB*F*IND*PT***23***VS*30**N~EB*B*IND*AF***27*40****Y*N~"
                "MSG*SPEECH THERAPY REQUIRES REFERRAL~")
    result = decode(text)
    e = result.eligibility[0]
    assert e.active is True and e.plan == "SILVER HMO" and e.trace_number == "ELIG0002"
    pt = next(s for s in e.summaries() if s.service_type == "PT" and s.in_network is False)
    assert (pt.visits_total, pt.visits_period) == (30, "23")
    af = next(s for s in e.summaries() if s.service_type == "AF" and s.in_network is False)
    assert af.copay == 40 and af.auth_required is True and af.messages == ["SPEECH THERAPY REQUIRES REFERRAL"]
    oop = next(s for s in e.summaries() if s.service_type == "30")
    assert (oop.out_of_pocket_total, oop.out_of_pocket_remaining) == (3000, 2750)
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    items = resources(bundle, "CoverageEligibilityResponse")[0]["insurance"][0]["item"]
    af_item = next(i for i in items if i["category"]["coding"][0]["code"] == "AF" and "benefit" in i)
    assert af_item["authorizationRequired"] is True and af_item["network"]["coding"][0]["code"] == "out"
    assert af_item["description"] == "SPEECH THERAPY REQUIRES REFERRAL"


def test_271_inactive_and_aaa():
    inactive = decode(_271("EB*6*IND*30~")).eligibility[0]
    assert inactive.active is False
    text = _271("AAA*N**75*C~")
    result = decode(text)
    e = result.eligibility[0]
    assert e.rejects[0].reason == "75" and e.rejects[0].loop_id == "2100C"
    bundle = result.to_fhir()
    assert_valid_bundle(bundle)
    resp = resources(bundle, "CoverageEligibilityResponse")[0]
    assert resp["outcome"] == "error" and resp["error"][0]["code"]["coding"][0]["code"] == "75"
    oo = resources(bundle, "OperationOutcome")[0]
    assert "not found" in oo["issue"][0]["diagnostics"] and oo["issue"][0]["expression"] == ["2100C/AAA"]
