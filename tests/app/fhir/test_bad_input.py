"""Bad input is a 4xx OperationOutcome that names the element, on every endpoint that takes it;
never a 500, and nothing written."""
from __future__ import annotations

import pytest

from tests.app.fhir.helpers import encounter, patient
from tests.app.fhir.test_errors import assert_outcome

NOT_OBJECTS = [b"[]", b'"x"', b"1", b"true", b"null"]
BODY_ENDPOINTS = [
    ("POST", "/fhir/CoverageEligibilityRequest/$submit"),
    ("POST", "/fhir/CoverageEligibilityRequest/cer-1/$submit"),
    ("POST", "/fhir/Claim/$scrub"),
    ("POST", "/fhir/Claim/claim-1/$scrub"),
    ("POST", "/fhir/Encounter/enc-1/$generate-claim"),
    ("POST", "/fhir/Coverage/cov-1/$eligibility-request"),
    ("POST", "/fhir/Patient"),
    ("PUT", "/fhir/Patient/pat-1"),
    ("PUT", "/fhir/Patient?identifier=urn:mrn|1"),
    ("POST", "/fhir"),
]
LONG = "x" * 65


@pytest.mark.parametrize("method,url", BODY_ENDPOINTS)
@pytest.mark.parametrize("body", NOT_OBJECTS)
async def test_a_body_that_is_not_an_object_is_400(api, method, url, body):
    r = await api.request(method, url, content=body, headers={"content-type": "application/fhir+json"})
    outcome = assert_outcome(r, 400)
    assert outcome["issue"][0].get("expression"), outcome


PARAMETERS = [
    ({"resourceType": "Parameters", "parameter": "x"}, "Parameters.parameter"),
    ({"resourceType": "Parameters", "parameter": [1]}, "Parameters.parameter[0]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": []}]}, "Parameters.parameter[0].resource"),
    ({"resourceType": "Parameters", "parameter": [{"name": "discipline", "valueCode": {}}]}, "Parameters.parameter[0].valueCode"),
    ({"resourceType": "Parameters", "parameter": [{"valueString": "x"}]}, "Parameters.parameter[0].name"),
]


@pytest.mark.parametrize("method,url", [e for e in BODY_ENDPOINTS if "$" in e[1]])
@pytest.mark.parametrize("body,where", PARAMETERS)
async def test_a_malformed_parameters_body_names_the_element(api, method, url, body, where):
    outcome = assert_outcome(await api.request(method, url, json=body), 400)
    assert any(e.startswith(where) for i in outcome["issue"] for e in i.get("expression", [])), outcome


async def test_an_eligibility_request_is_validated_before_anything_is_stored(api):
    body = {"resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["benefits"],
            "patient": {"reference": "Patient/p"}, "created": "2024-01-01", "insurer": {"reference": "Organization/o"},
            "identifier": "not-a-list"}
    outcome = assert_outcome(await api.post("/fhir/CoverageEligibilityRequest/$submit", json=body), 400)
    assert outcome["issue"][0]["expression"][0].startswith("CoverageEligibilityRequest.identifier")
    assert (await api.get("/fhir/CoverageEligibilityRequest")).json()["total"] == 0


@pytest.mark.parametrize("reference", [f"Patient/{LONG}", f"http://testserver/fhir/Patient/{LONG}",
                                       f"Patient/{LONG}/_history/1", f"{LONG}/x"])
async def test_a_reference_id_over_64_characters_is_invalid(api, reference):
    body = encounter(reference)
    assert_outcome(await api.post("/fhir/Encounter", json=body), 400)["issue"][0]["expression"] == \
        ["Encounter.subject.reference"]
    r = await api.put("/fhir/Encounter/enc-long", json={**body, "id": "enc-long"})
    assert assert_outcome(r, 400)["issue"][0]["expression"] == ["Encounter.subject.reference"]
    txn = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**body, "participant": [{"individual": {"reference": reference}}]},
         "request": {"method": "POST", "url": "Encounter"}}]}
    expressions = assert_outcome(await api.post("/fhir", json=txn), 400)["issue"]
    assert {e for i in expressions for e in i["expression"]} == {
        "Bundle.entry[0].resource.subject.reference", "Bundle.entry[0].resource.participant[0].individual.reference"}
    assert (await api.get("/fhir/Encounter")).json()["total"] == 0
    # 64 characters is a FHIR id
    assert (await api.post("/fhir/Encounter", json=encounter("Patient/" + "x" * 64))).status_code == 201


async def test_a_resource_id_over_64_characters_is_invalid(api):
    r = await api.put("/fhir/Patient?identifier=urn:mrn|L1", json={**patient(mrn="L1"), "id": LONG})
    assert assert_outcome(r, 400)["issue"][0]["expression"] == ["Patient.id"]
    txn = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(), "request": {"method": "PUT", "url": f"Patient/{LONG}"}}]}
    assert assert_outcome(await api.post("/fhir", json=txn), 400)["issue"][0]["expression"] == \
        ["Bundle.entry[0].request.url"]
    assert (await api.get("/fhir/Patient")).json()["total"] == 0


async def test_bundle_entries_with_odd_shapes_are_400(api):
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [
            {"fullUrl": ["urn:uuid:1"], "request": {"method": "GET", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/p/_history/99999999999999999999"}}]}
        r = await api.post("/fhir", json=bundle)
        if kind == "transaction":
            assert assert_outcome(r, 400)["issue"][0]["expression"] == ["Bundle.entry[0].fullUrl"]
        else:
            statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
            assert statuses == ["400", "400"]


async def test_a_resource_of_unknown_type_inside_another_is_400(api):
    body = {**patient(), "contained": [{"resourceType": "Nonsense", "id": "n"}]}
    assert_outcome(await api.post("/fhir/Patient", json=body), 400)


async def test_dates_beyond_the_calendar_in_utc_are_no_server_error(api):
    late = encounter("Patient/p", start="9999-12-31T23:59:59-05:00")
    assert (await api.post("/fhir/Encounter", json=late)).status_code in (201, 400)
    for query in ("date=gt9999-12-31T23:59:59Z", "_lastUpdated=9999-12-31T23:59:59-14:00",
                  "date=lt0001-01-01T00:00:00+14:00"):
        assert (await api.get(f"/fhir/Encounter?{query}")).status_code in (200, 400), query


async def test_history_and_version_numbers_out_of_range_are_4xx(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    assert_outcome(await api.get(f"/fhir/Patient/{pid}/_history/99999999999999999999999"), 404)
    assert_outcome(await api.get("/fhir/_history?_count=-5"), 400)["issue"][0]["expression"] == ["_count"]


@pytest.mark.parametrize("query", ["identifier=%00", "name=a%00b", "_id=x%1F", "name%00=a"])
async def test_a_control_character_in_a_search_is_400(api, query):
    """No FHIR string holds a control character; PostgreSQL refuses a NUL outright."""
    for method in ("get", "post"):
        r = await (api.get(f"/fhir/Patient?{query}") if method == "get" else
                   api.post("/fhir/Patient/_search", content=query,
                            headers={"Content-Type": "application/x-www-form-urlencoded"}))
        assert r.status_code == 400, (method, r.text)
        assert r.json()["issue"][0]["code"] == "invalid"
