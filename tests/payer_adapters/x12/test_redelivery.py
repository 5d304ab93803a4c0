"""A payer answer delivered again in a new envelope (new ISA13/GS06/ST02, same content) decodes to
the same resource ids, so posting it again overwrites instead of doubling; different content gets
different ids. References between decoded resources are relative ``Type/id`` that resolve once the
resources are stored under their ids."""
from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from payer_adapters.x12 import StructureError, decode, iter_835_fhir

from .envelopes import interchange
from .fhir_check import assert_valid_bundle, resources

ACK_277 = ["BHT*0085*08*ACK5001*20250116*0900*TH",
           "HL*1**20*1", "NM1*PR*2*ACME HEALTH*****PI*60054", "TRN*1*SRC5001",
           "DTP*050*D8*20250115", "DTP*009*D8*20250116",
           "HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*TB0001", "TRN*2*0000001010001",
           "STC*A1:19*20250116*WQ*330",
           "HL*3*2*19*1", "NM1*85*2*BRIGHT HANDS*****XX*1234567893", "TRN*1*P1", "STC*A1:19**WQ*330",
           "HL*4*3*PT", "NM1*QC*1*DOE*JANE****MI*M1", "TRN*2*PCN1", "STC*A2:20*20250116*WQ*150",
           "REF*1K*ICN1", "DTP*472*D8*20250110",
           "HL*5*3*PT", "NM1*QC*1*ROE*RAY****MI*M2", "TRN*2*PCN2", "STC*A7:164:IL*20250116*U*100",
           "DTP*472*D8*20250110",
           "HL*6*3*PT", "NM1*QC*1*POE*ANN****MI*M3", "TRN*2*PCN3", "STC*A2:20*20250116*WQ*80",
           "REF*1K*ICN3", "DTP*472*D8*20250111",
           "HL*7*2*19*0", "NM1*85*2*OTHER CLINIC*****XX*1999999992", "TRN*1*P2", "STC*A3:24:85**U*90"]

ACK_999 = ["AK1*HC*101*005010X222A1", "AK2*837*0001*005010X222A1", "IK5*A",
           "AK2*837*0002*005010X222A1", "IK3*NM1*12*2010BB*3", "CTX*CLM01:PCN2", "IK5*R*5", "AK9*P*2*2*1"]

ELIG_271 = ["BHT*0022*11*ELIGREQ1*20250110*1200",
            "HL*1**20*1", "NM1*PR*2*ACME HEALTH*****PI*60054",
            "HL*2*1*21*1", "NM1*1P*2*BRIGHT HANDS*****XX*1234567893",
            "HL*3*2*22*0", "TRN*2*ELIG0001*9876543210", "NM1*IL*1*DOE*JANE****MI*W123456789",
            "EB*1**30**GOLD PPO", "EB*B**AD*HM**27*30*****Y"]

REMIT_835 = ["BPR*I*180*C*ACH*CCP*01*011000015*DA*123456*1512345678**01*011000015*DA*654321*20250120",
             "TRN*1*EFT0001*1512345678", "DTM*405*20250118",
             "N1*PR*ACME HEALTH*XV*60054", "N1*PE*BRIGHT HANDS*XX*1234567893",
             "LX*1",
             "CLP*PCN1*1*150*100*20*12*ICN1*11*1", "NM1*QC*1*DOE*JANE****MI*M1",
             "SVC*HC:97110:GO*150*100**2", "DTM*472*20250110", "CAS*CO*45*30", "CAS*PR*2*20", "REF*6R*L1",
             "CLP*PCN3*1*80*80*0*12*ICN3*11*1", "NM1*QC*1*POE*ANN****MI*M3",
             "SVC*HC:97140:GO*80*80**1", "DTM*472*20250111", "REF*6R*L3"]

KINDS = {
    "277CA": ("HN", "005010X214", "277", ACK_277),
    "999": ("FA", "005010X231A1", "999", ACK_999),
    "271": ("HB", "005010X279A1", "271", ELIG_271),
    "835": ("HP", "005010X221A1", "835", REMIT_835),
}


def _ids(text: str) -> list[str]:
    bundle = decode(text).to_fhir()
    assert_valid_bundle(bundle)
    return [e["resource"]["id"] for e in bundle["entry"]]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_new_envelope_same_content_same_ids(kind):
    gs01, version, st01, body = KINDS[kind]
    first = _ids(interchange(gs01, version, st01, [body], isa13=777, gs06=777, st02=1))
    again = _ids(interchange(gs01, version, st01, [body], isa13=912, gs06=45, st02=38))
    assert first and again == first
    assert len(set(first)) == len(first)
    assert set(first + again) == set(first)  # posting both: no new resource, e.g. 3 ClaimResponses stay 3


def test_277ca_redelivered_keeps_three_claim_responses():
    gs01, version, st01, body = KINDS["277CA"]
    both = decode(interchange(gs01, version, st01, [body], isa13=1) + interchange(gs01, version, st01, [body], isa13=2))
    ids = {e["resource"]["id"] for e in both.to_fhir()["entry"] if e["resource"]["resourceType"] == "ClaimResponse"}
    assert len(ids) == 3


def test_different_content_gets_different_ids():
    """Same envelope, one claim's status changed: only that claim's ClaimResponse id changes."""
    gs01, version, st01, body = KINDS["277CA"]
    changed = [s.replace("STC*A7:164:IL*20250116*U*100", "STC*A2:20*20250117*WQ*100") for s in body]
    a = _ids(interchange(gs01, version, st01, [body]))
    b = _ids(interchange(gs01, version, st01, [changed]))
    assert a[0] == b[0] and a[2] == b[2] and a[1] != b[1]


def test_835_without_trn_is_refused():
    """TRN02 + payer id identify a payment; without a TRN a re-sent 835 could only be posted twice."""
    gs01, version, st01, body = KINDS["835"]
    text = interchange(gs01, version, st01, [[s for s in body if not s.startswith("TRN")]])
    with pytest.raises(StructureError) as err:
        decode(text)
    assert err.value.segment_id == "TRN" and "TRN02" in str(err.value)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_references_between_decoded_resources_resolve_once_stored(kind):
    gs01, version, st01, body = KINDS[kind]
    stored_claims = {"PCN1": {"resourceType": "Claim", "id": "claim-1", "patient": {"reference": "Patient/p1"},
                              "insurer": {"reference": "Organization/payer"}}}
    bundle = decode(interchange(gs01, version, st01, [body])).to_fhir(stored_claims)
    stored = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    stored |= {"Claim/claim-1", "Patient/p1", "Organization/payer"}
    refs = list(_references(bundle["entry"]))
    for ref in refs:
        assert RELATIVE.fullmatch(ref), ref
        assert ref in stored, ref
    if kind == "835":
        [pr] = resources(bundle, "PaymentReconciliation")
        eob_ids = [r["id"] for r in resources(bundle, "ExplanationOfBenefit")]
        assert [d["response"]["reference"] for d in pr["detail"]] == [f"ExplanationOfBenefit/{i}" for i in eob_ids]


def test_streamed_835_entries_match_the_whole_decode():
    gs01, version, st01, body = KINDS["835"]
    text = interchange(gs01, version, st01, [body])
    streamed = list(iter_835_fhir(text.encode()))
    assert [e["fullUrl"] for e in streamed] == [e["fullUrl"] for e in decode(text).to_fhir()["entry"]]
