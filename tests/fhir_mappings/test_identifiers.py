"""The identifier resolver: the forms of PROFILE.md's Identifiers table, their order, and the
mapper reading US conventions (CARIN BB, v2-0203) the way the encoders and adapters do."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fhir_mappings.helpers import issues_for, run
from tests.fhir_mappings.mapping_builders import SOPT, make_encounter_bundle

from fhir_mappings import identifiers as ids

PROFILE = Path(__file__).resolve().parents[2] / "fhir_mappings" / "PROFILE.md"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
C4BB = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
TB = "https://therabridge.dev/fhir/sid/"


def typed(system: str, code: str, value: str, id_system: str | None = None) -> dict[str, Any]:
    ident: dict[str, Any] = {"type": {"coding": [{"system": system, "code": code}]}, "value": value}
    if id_system:
        ident["system"] = id_system
    return ident


def _resource(bundle: dict[str, Any], rtype: str, rid: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == rtype and e["resource"]["id"] == rid)


# -- the mapper --------------------------------------------------------------------------------

def test_carin_payer_organization_is_billed_with_its_payer_id() -> None:
    bundle = make_encounter_bundle(coverage_type=(SOPT, "5"))
    _resource(bundle, "Organization", "org-payer")["identifier"] = [
        {"system": "urn:oid:2.16.840.1.113883.6.300", "value": "95216",
         "type": {"coding": [{"system": C4BB, "code": "naiccode"}]}},
        typed(C4BB, "payerid", "ACME1")]
    claim, outcome, _ = run(bundle)
    assert claim["insurer"]["identifier"] == {"system": TB + "payer-id", "value": "ACME1"}
    assert not [i for i in issues_for(outcome, "INPUT-REQUIRED") if "payer id" in i["details"]["text"]]


def test_naic_code_alone_is_not_taken_for_a_payer_id() -> None:
    bundle = make_encounter_bundle(coverage_type=(SOPT, "5"))
    _resource(bundle, "Organization", "org-payer")["identifier"] = [
        {"system": "urn:oid:2.16.840.1.113883.6.300", "value": "95216",
         "type": {"coding": [{"system": C4BB, "code": "naiccode"}]}}]
    claim, outcome, _ = run(bundle)
    assert "identifier" not in claim["insurer"]
    assert [i for i in issues_for(outcome, "INPUT-REQUIRED") if "payer id" in i["details"]["text"]]


def test_typed_npi_and_tin_without_system_are_read() -> None:
    bundle = make_encounter_bundle()
    _resource(bundle, "Organization", "org-clinic")["identifier"] = [
        typed(V2, "NPI", "1234567893"), typed(V2, "EN", "37-1234567")]
    _resource(bundle, "Practitioner", "ot-1")["identifier"] = [typed(V2, "NPI", "1982736450")]
    claim, outcome, ids_found = run(bundle)
    assert claim["provider"]["identifier"] == {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    assert claim["careTeam"][0]["provider"]["identifier"]["value"] == "1982736450"
    assert "INPUT-REQUIRED" not in ids_found and "RENDERING-PROVIDER" not in ids_found


def test_member_id_from_a_typed_identifier_and_never_the_comp_claim_number() -> None:
    bundle = make_encounter_bundle()
    cov = _resource(bundle, "Coverage", "cov-1")
    del cov["subscriberId"]
    cov["identifier"] = [{"system": TB + "property-casualty-claim-number", "value": "WC-1"},
                         typed(V2, "MB", "88800933501", "https://plan.example/member")]
    _, outcome, _ = run(bundle)
    assert not [i for i in issues_for(outcome, "INPUT-REQUIRED") if "member id" in i["details"]["text"]]
    assert ids.member_id(cov) == "88800933501"
    cov["identifier"] = cov["identifier"][:1]
    assert ids.member_id(cov) is None


def test_employer_policy_holder_is_not_mistaken_for_the_billing_practice() -> None:
    bundle = make_encounter_bundle(coverage_type=("http://terminology.hl7.org/CodeSystem/v3-ActCode", "WCBPOL"))
    del _resource(bundle, "Encounter", "enc-1")["serviceProvider"]
    _resource(bundle, "Coverage", "cov-1")["policyHolder"] = {"reference": "Organization/employer"}
    bundle["entry"].append({"resource": {"resourceType": "Organization", "id": "employer", "name": "Acme Mfg"}})
    claim, _, _ = run(bundle)
    assert claim["provider"]["reference"] == "Organization/org-clinic"


# -- the resolver's order ----------------------------------------------------------------------

def test_forms_win_in_table_order_not_array_order() -> None:
    org = {"identifier": [typed(V2, "NIIP", "NIIP1"), typed(C4BB, "payerid", "CARIN1"),
                          {"system": TB + "payer-id", "value": "OURS"}]}
    assert ids.payer_id(org) == "OURS"
    org["identifier"].pop()
    assert ids.payer_id(org) == "CARIN1"
    assert ids.resolve(ids.PAYER_ID, org).path == "identifier[1]"  # type: ignore[union-attr]
    # the Organization first, then the Reference (Claim.insurer.identifier)
    assert ids.payer_id({}, {"identifier": typed(V2, "NIIP", "REF1")}) == "REF1"
    assert ids.payer_id(org, {"identifier": {"system": TB + "payer-id", "value": "REF1"}}) == "CARIN1"


def test_patient_control_number_takes_the_claims_own_identifier_when_it_fits_clm01() -> None:
    claim = {"identifier": [
        {"system": TB + "submission-key", "value": "K1"},                       # ours, another meaning
        typed(C4BB, "uc", "PAYER123"),                                           # the payer's claim number
        {"system": "http://clinic.example/claim", "value": "X" * 21},             # longer than CLM01's 20
        {"system": "http://clinic.example/claim", "value": "med-1", "use": "official"},  # lower case
        {"system": "http://clinic.example/old", "value": "OLD1", "use": "old"},
        {"system": "http://clinic.example/claim", "value": "MED-00050"},
    ]}
    assert ids.patient_control_number(claim) == "MED-00050"
    claim["identifier"].append(typed(C4BB, "pat", "ACCT77"))
    assert ids.patient_control_number(claim) == "ACCT77"
    claim["identifier"].append({"system": TB + "patient-control-number", "value": "TBABC"})
    assert ids.patient_control_number(claim) == "TBABC"
    assert ids.fits(ids.PATIENT_CONTROL_NUMBER, "A" * 20) and not ids.fits(ids.PATIENT_CONTROL_NUMBER, "A" * 21)


def test_trace_number_takes_the_requests_own_identifier_when_it_fits_trn02() -> None:
    req = {"identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:52345"},
                          {"system": "http://happyvalley.example/elig", "value": "52345"}]}
    assert ids.trace_number(req) == "52345"
    req["identifier"].insert(0, {"system": TB + "eligibility-trace-number", "value": "TRACE1"})
    assert ids.trace_number(req) == "TRACE1"


def test_payer_claim_number_of_an_identifier_or_an_answer() -> None:
    assert ids.payer_claim_number({"value": "22025031000001"}) == "22025031000001"
    eob = {"identifier": [{"system": "https://plan.example/EOBIdentifier", "value": "EOB-1",
                           "type": {"coding": [{"system": C4BB, "code": "uc"}]}}]}
    assert ids.payer_claim_number(eob) == "EOB-1"


def test_profile_table_is_generated_from_the_data_file() -> None:
    doc = PROFILE.read_text()
    assert ids.table_markdown() in doc, "PROFILE.md identifier table is stale: python -m fhir_mappings.identifiers"
    assert ids.sources_markdown() in doc
