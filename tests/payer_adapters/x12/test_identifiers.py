"""The encoders read identifiers through the product's resolver (PROFILE.md, Identifiers):
US identifier types without our systems, and external resources carrying only their sender's own
identifiers, become valid 837P/270 files."""
from __future__ import annotations

from typing import Any

import pytest

from payer_adapters.x12 import EncodeError, decode, encode_270, encode_837p, validate

from . import builders as B
from .conftest import NOW
from .pyx12_check import assert_pyx12_ok
from .test_encode_837p import find

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
C4BB = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"


def typed(system: str, code: str, value: str) -> dict[str, Any]:
    return {"type": {"coding": [{"system": system, "code": code}]}, "value": value}


def res(bundle: dict[str, Any], rtype: str, rid: str | None = None) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype
                and (rid is None or e["resource"]["id"] == rid))


@pytest.mark.parametrize("ident", [typed(V2, "NIIP", "00952"), typed(C4BB, "payerid", "00952")],
                         ids=["v2-0203 NIIP", "CARIN payerid"])
def test_typed_payer_id_without_our_system(ident, partner, numbers):
    b = B.medicare_ot_bundle()
    res(b, "Organization", "payer")["identifier"] = [ident]
    out = encode_837p(b, partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    assert find(out, "NM1", "PR")[0][8:] == ["PI", "00952"]


def test_typed_npi_and_tin_without_our_systems(partner, numbers):
    b = B.medicare_ot_bundle()
    res(b, "Organization", "billing")["identifier"] = [typed(V2, "NPI", "1234567893"), typed(V2, "TAX", "37-1234567")]
    res(b, "Practitioner", "rendering")["identifier"] = [typed(C4BB, "npi", "1982736450")]
    out = encode_837p(b, partner, numbers, now=NOW)
    assert find(out, "NM1", "85")[0][9] == "1234567893" and find(out, "REF", "EI")[0][2] == "371234567"
    assert find(out, "NM1", "82")[0][9] == "1982736450"


def test_external_claim_with_its_own_identifier_becomes_clm01(partner, numbers):
    b = B.medicare_ot_bundle()
    claim = res(b, "Claim")
    claim["identifier"] = [{"system": "http://CedarArmsMedicalCenter.example/claim", "value": "MED-00050"}]
    cov = res(b, "Coverage")
    del cov["subscriberId"]
    cov["identifier"] = [{"system": "http://plan.example/member", "value": "1EG4TE5MK73",
                          "type": {"coding": [{"system": V2, "code": "MB"}]}}]
    out = encode_837p(b, partner, numbers, now=NOW)
    assert_pyx12_ok(out)
    assert find(out, "CLM")[0][1] == "MED-00050"
    assert find(out, "NM1", "IL")[0][9] == "1EG4TE5MK73"
    assert decode(out).transactions[0].claims[0].patient_control_number == "MED-00050"


def test_external_claim_whose_identifiers_do_not_fit_clm01_is_refused_clearly(partner, numbers):
    b = B.medicare_ot_bundle()
    res(b, "Claim")["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:187e0c12-8dd2-67e2"}]
    with pytest.raises(EncodeError, match="no patient control number") as exc:
        encode_837p(b, partner, numbers, now=NOW)
    assert (exc.value.loop_id, exc.value.segment_id) == ("2300", "CLM")


def test_external_eligibility_request_with_its_own_identifier_becomes_trn02(partner, numbers):
    b = B.eligibility_bundle()
    req = res(b, "CoverageEligibilityRequest")
    req["identifier"] = [{"system": "http://happyvalley.example/coverageelegibilityrequest", "value": "52345"}]
    res(b, "Organization", "acme")["identifier"] = [typed(C4BB, "payerid", "60054")]
    out = encode_270(b, partner, numbers, now=NOW)
    assert validate(out) == []  # structural only: pyx12 has no 5010 270 map
    assert find(out, "TRN")[0][1:3] == ["1", "52345"]
    assert find(out, "NM1", "PR")[0][9] == "60054"
