"""Every error is an OperationOutcome with the right status; never a stack trace."""
from __future__ import annotations

import httpx

from app.main import create_app
from app.settings import Settings
from tests.conftest import tenant_from_header
from tests.app.fhir.helpers import patient


def assert_outcome(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in r.text
    if code:
        assert body["issue"][0]["code"] == code
    return body


async def test_xml_is_415_with_explanation(api):
    r = await api.post("/fhir/Patient", content=b"<Patient xmlns='http://hl7.org/fhir'/>",
                       headers={"Content-Type": "application/fhir+xml"})
    body = assert_outcome(r, 415, "not-supported")
    assert "JSON" in body["issue"][0]["diagnostics"]


async def test_accept_xml_only_is_406(api):
    assert_outcome(await api.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"}), 406)
    assert_outcome(await api.get("/fhir/metadata?_format=xml"), 406)


async def test_malformed_json_is_400(api):
    assert_outcome(await api.post("/fhir/Patient", content=b'{"resourceType": "Patient",',
                                  headers={"Content-Type": "application/fhir+json"}), 400, "structure")
    assert_outcome(await api.post("/fhir/Patient", content=b"", headers={"Content-Type": "application/json"}), 400)
    assert_outcome(await api.post("/fhir/Patient", json=["not", "an", "object"]), 400)


async def test_body_over_limit_is_413(api):
    big = patient(extra_text="x")
    big["name"][0]["text"] = "x" * (70 * 1024)
    assert_outcome(await api.post("/fhir/Patient", json=big), 413, "too-long")


async def test_type_and_id_mismatch_is_400(api):
    body = assert_outcome(await api.post("/fhir/Encounter", json=patient()), 400)
    assert body["issue"][0]["expression"] == ["Patient.resourceType"]
    assert_outcome(await api.put("/fhir/Patient/x", json={**patient(), "id": "y"}), 400)


async def test_unknown_type_is_404(api):
    assert_outcome(await api.get("/fhir/Spaceship/1"), 404)
    assert_outcome(await api.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}), 404)
    assert_outcome(await api.get("/fhir/Patient/does-not-exist"), 404, "not-found")


async def test_invalid_resource_names_the_element(api):
    r = await api.post("/fhir/Patient", json={"resourceType": "Patient", "birthDate": "31/12/1950",
                                              "name": [{"given": "Ann"}], "colour": "red"})
    body = assert_outcome(r, 400)
    expressions = {e for i in body["issue"] for e in i["expression"]}
    assert {"Patient.birthDate", "Patient.name[0].given", "Patient.colour"} <= expressions


async def test_method_not_allowed_is_405(api):
    assert_outcome(await api.patch("/fhir/Patient/1", json={}), 405)
    assert_outcome(await api.delete("/fhir/Patient"), 405)  # no criteria


async def test_bad_if_match_is_400_and_stale_is_412(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    assert_outcome(await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid},
                                 headers={"If-Match": "yesterday"}), 400)
    assert_outcome(await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid},
                                 headers={"If-Match": 'W/"5"'}), 412, "conflict")


async def test_conditional_create_outcomes(api):
    headers = {"If-None-Exist": "identifier=urn:mrn|CC1"}
    first = await api.post("/fhir/Patient", json=patient(mrn="CC1"), headers=headers)
    assert first.status_code == 201
    again = await api.post("/fhir/Patient", json=patient(mrn="CC1"), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    await api.post("/fhir/Patient", json=patient(mrn="CC1"))
    assert_outcome(await api.post("/fhir/Patient", json=patient(mrn="CC1"), headers=headers), 412, "multiple-matches")
    assert_outcome(await api.post("/fhir/Patient", json=patient(), headers={"If-None-Exist": "nonsense=1"}), 400)


async def test_conditional_update(api):
    r = await api.put("/fhir/Patient?identifier=urn:mrn|CU1", json=patient(mrn="CU1"))
    assert r.status_code == 201
    pid = r.json()["id"]
    r = await api.put("/fhir/Patient?identifier=urn:mrn|CU1", json={**patient(mrn="CU1"), "gender": "male"})
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["meta"]["versionId"] == "2"
    assert_outcome(await api.put("/fhir/Patient?identifier=urn:mrn|CU1", json={**patient(mrn="CU1"), "id": "other"}), 400)


async def test_conditional_delete(api):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="CD1"))).json()["id"]
    r = await api.delete("/fhir/Patient?identifier=urn:mrn|CD1")
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    assert (await api.get(f"/fhir/Patient/{pid}")).status_code == 410
    assert (await api.delete("/fhir/Patient?identifier=urn:mrn|CD1")).status_code == 200  # nothing left: no-op
    await api.post("/fhir/Patient", json=patient(mrn="CD2"))
    await api.post("/fhir/Patient", json=patient(mrn="CD2"))
    assert_outcome(await api.delete("/fhir/Patient?identifier=urn:mrn|CD2"), 412, "multiple-matches")


async def test_prefer_return(api):
    minimal = await api.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["location"]
    oo = await api.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert oo.json()["resourceType"] == "OperationOutcome"


async def test_internal_errors_are_500_outcomes_without_traces(tmp_path):
    broken = tmp_path / "missing-dir" / "db.sqlite"
    app = create_app(Settings(database_url=f"sqlite:///{broken}", public_url="http://testserver"),
                     authenticate=tenant_from_header)
    broken.parent.chmod(0o500)  # the schema was never created: every query fails inside the store
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://testserver") as client:
        assert_outcome(await client.get("/fhir/Patient/1"), 500, "exception")
        assert (await client.get("/readyz")).status_code in (200, 503)
        assert (await client.get("/healthz")).status_code == 200
    app.state.services.audit.close(timeout=0.5)
