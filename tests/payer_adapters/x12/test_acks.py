"""999 and 277CA beyond the shared examples: several sets, accepted with errors, line statuses."""
from __future__ import annotations

import pytest

from payer_adapters.x12 import decode, iter_835_fhir, load_partner

from .fhir_check import assert_valid_bundle, resources

ISA = "ISA*00*          *00*          *ZZ*CLEARHOUSE01   *ZZ*THERABRIDGE    *250115*1032*^*00501*000000777*0*T*:~\n"


def _wrap(gs01: str, version: str, body: list[str], st01: str) -> str:
    st = [f"ST*{st01}*0001*{version}", *body]
    return (ISA + f"GS*{gs01}*CLEARHOUSE01*THERABRIDGE*20250115*1032*777*X*{version}~\n"
            + "".join(s + "~\n" for s in st) + f"SE*{len(st) + 1}*0001~\nGE*1*777~\nIEA*1*000000777~\n")


def test_999_several_sets_and_accepted_with_errors():
    text = _wrap("FA", "005010X231A1", [
        "AK1*HC*105*005010X222A1",
        "AK2*837*0001*005010X222A1", "IK5*A",
        "AK2*837*0002*005010X222A1", "IK3*REF*40*2300*8", "CTX*CLM01:PCN2", "IK4*2*127*I12*X",
        "IK5*E*I5",
        "AK2*837*0003*005010X222A1", "IK3*NM1*12*2010BB*3", "IK5*R*5",
        "AK9*P*3*3*2",
    ], "999")
    ack = decode(text).acknowledgments[0]
    assert [(s.control_number, s.status, s.accepted) for s in ack.sets] == [
        ("0001", "A", True), ("0002", "E", True), ("0003", "R", False)]
    assert ack.group_status == "P" and ack.counts == (3, 3, 2)
    assert ack.sets[1].patient_control_numbers == ["PCN2"]
    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    outcomes = resources(bundle, "OperationOutcome")
    assert len(outcomes) == 3
    assert outcomes[1]["issue"][-1]["severity"] == "warning"
    assert outcomes[1]["issue"][-1]["expression"] == ["2300/REF[40]/REF02"]
    assert outcomes[2]["issue"][-1]["expression"] == ["2010BB/NM1[12]"]
    assert "Required segment missing" in outcomes[2]["issue"][-1]["details"]["text"]


def test_999_without_ak9_is_refused():
    from payer_adapters.x12 import StructureError

    text = _wrap("FA", "005010X231A1", ["AK1*HC*105*005010X222A1", "AK2*837*0001*005010X222A1", "IK5*A"], "999")
    with pytest.raises(StructureError) as exc:
        decode(text)
    assert exc.value.segment_id == "AK9"


def test_277ca_line_level_statuses():
    text = _wrap("HN", "005010X214", [
        "BHT*0085*08*X1*20250115*1200*TH",
        "HL*1**20*1", "NM1*PR*2*ACME*****PI*60054", "TRN*1*T1", "DTP*050*D8*20250115", "DTP*009*D8*20250116",
        "HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*THERABRIDGE", "TRN*2*B1", "STC*A1:19*20250115*WQ*200",
        "HL*3*2*19*1", "NM1*85*2*BRIGHT HANDS*****XX*1234567893", "TRN*1*B2", "STC*A1:19**WQ*200",
        "HL*4*3*PT", "NM1*QC*1*DOE*JANE****MI*M1", "TRN*2*PCN9", "STC*A3:21*20250115*U*200",
        "DTP*472*RD8*20250110-20250111",
        "SVC*HC:97110:GP*100****2", "STC*A7:454*20250115*U", "REF*FJ*PCN901", "DTP*472*D8*20250110",
        "SVC*HC:97140:GP*100****1", "STC*A2:20*20250115*WQ", "REF*FJ*PCN902", "DTP*472*D8*20250111",
    ], "277")
    ack = decode(text).claim_acknowledgments[0]
    claim = ack.claims[0]
    assert claim.outcome == "error" and claim.service_date == "2025-01-10"
    assert [(ln.code, ln.line_control_number, ln.statuses[0].category) for ln in claim.lines] == [
        ("97110", "PCN901", "A7"), ("97140", "PCN902", "A2")]
    assert ack.process_date == "2025-01-16"
    claims = {"PCN9": {"resourceType": "Claim", "id": "c9", "item": [
        {"sequence": 5, "extension": [{"url": "https://therabridge.dev/fhir/StructureDefinition/line-control-number",
                                       "valueString": "PCN902"}]},
        {"sequence": 4, "extension": [{"url": "https://therabridge.dev/fhir/StructureDefinition/line-control-number",
                                       "valueString": "PCN901"}]}]}}
    bundle = decode(text).to_fhir(claims)
    assert_valid_bundle(bundle)
    cr = resources(bundle, "ClaimResponse")[0]
    assert cr["request"]["reference"] == "Claim/c9" and cr["created"] == "2025-01-16"
    assert [i["itemSequence"] for i in cr["item"]] == [4, 5]
    assert any(e.get("itemSequence") == 4 for e in cr["error"])


def test_streaming_fhir_matches_whole_decode(examples):
    path = examples / "835_ot_remittance.x12"
    streamed = list(iter_835_fhir(path))
    whole = decode(path).to_fhir()["entry"]
    assert [e["fullUrl"] for e in streamed] == [e["fullUrl"] for e in whole]
    assert streamed[0] == whole[0]


def test_partners():
    sandbox = load_partner("sandbox")
    default = load_partner()
    assert sandbox.receiver_id == "TBSANDBOX" and sandbox.sender_id == default.sender_id
    assert sandbox.ack_requested and not default.ack_requested
    with pytest.raises(KeyError):
        load_partner("nope")
