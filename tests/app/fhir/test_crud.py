"""Create, read, vread, update, delete and history (R4 http.html §3.1.0.1–3.1.0.8)."""
from __future__ import annotations

from email.utils import parsedate_to_datetime

from fhir.resources.R4B.patient import Patient

from tests.conftest import BASE
from tests.app.fhir.helpers import encounter, patient


async def test_create_assigns_id_and_version_headers(api):
    r = await api.post("/fhir/Patient", json={**patient(), "id": "client-chosen", "meta": {"versionId": "9"}})
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["location"] == f"{BASE}/Patient/{body['id']}/_history/1"
    assert r.headers["etag"] == 'W/"1"'
    assert parsedate_to_datetime(r.headers["last-modified"]).year >= 2024
    assert r.headers["content-type"].startswith("application/fhir+json")
    Patient.model_validate(body)


async def test_read_returns_stored_resource(api):
    created = (await api.post("/fhir/Patient", json=patient(family="Okafor"))).json()
    r = await api.get(f"/fhir/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'
    assert list(r.json())[:3] == ["resourceType", "id", "meta"]


async def test_update_with_if_match_and_stale_version(api):
    created = (await api.post("/fhir/Patient", json=patient())).json()
    pid = created["id"]
    changed = {**created, "gender": "female"}
    r = await api.put(f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"2"'
    assert r.json()["gender"] == "female"
    stale = await api.put(f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    v1 = await api.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and "gender" not in v1.json()
    assert (await api.get(f"/fhir/Patient/{pid}/_history/7")).status_code == 404


async def test_update_as_create_with_client_id(api):
    r = await api.put("/fhir/Patient/chosen-id", json={**patient(), "id": "chosen-id"})
    assert r.status_code == 201
    assert r.headers["location"].endswith("/Patient/chosen-id/_history/1")
    assert (await api.put("/fhir/Patient/chosen-id", json={**patient(), "id": "chosen-id"})).status_code == 200


async def test_update_body_id_must_match_url(api):
    assert (await api.put("/fhir/Patient/a", json={**patient(), "id": "b"})).status_code == 400
    missing = await api.put("/fhir/Patient/a", json=patient())
    assert missing.status_code == 400
    assert missing.json()["issue"][0]["expression"] == ["Patient.id"]


async def test_delete_then_read_is_gone_and_history_keeps_versions(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid, "active": True})
    d = await api.delete(f"/fhir/Patient/{pid}")
    assert d.status_code == 200 and d.headers["etag"] == 'W/"3"'
    gone = await api.get(f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert (await api.get(f"/fhir/Patient/{pid}/_history/3")).status_code == 410
    assert (await api.get(f"/fhir/Patient?_id={pid}")).json()["total"] == 0
    hist = (await api.get(f"/fhir/Patient/{pid}/_history")).json()
    assert hist["type"] == "history"
    assert [e.get("request", {}).get("method") for e in hist["entry"]] == ["DELETE", "PUT", "POST"]
    assert "resource" not in hist["entry"][0]
    assert (await api.delete(f"/fhir/Patient/{pid}")).status_code == 200  # already deleted: no effect
    recreated = await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid})
    assert recreated.status_code == 201 and recreated.headers["etag"] == 'W/"4"'


async def test_type_and_system_history(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}"))
    types = (await api.get("/fhir/Patient/_history")).json()
    assert [e["resource"]["resourceType"] for e in types["entry"]] == ["Patient"]
    system = (await api.get("/fhir/_history?_count=1")).json()
    assert len(system["entry"]) == 1 and system["entry"][0]["resource"]["resourceType"] == "Encounter"
    assert any(link["relation"] == "next" for link in system["link"])


async def test_trailing_slash_is_accepted(api):
    assert (await api.get("/fhir/Patient/")).status_code == 200


async def test_tenants_are_isolated(app, api, tenant):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="X1"))).json()["id"]
    other = app.state.services.store.for_tenant(tenant + "-other")
    app.state.services.store.ensure_tenant(tenant + "-other")
    import pytest

    from app.fhir.errors import NotFound
    with pytest.raises(NotFound):
        other.read("Patient", pid)
    r = await api.get(f"/fhir/Patient/{pid}", headers={"x-test-tenant": tenant + "-other"})
    assert r.status_code == 404
    s = await api.get("/fhir/Patient?identifier=urn:mrn|X1", headers={"x-test-tenant": tenant + "-other"})
    assert s.json()["total"] == 0
    h = await api.get(f"/fhir/Patient/{pid}/_history", headers={"x-test-tenant": tenant + "-other"})
    assert h.status_code == 404


async def test_health_endpoints(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json()["database"] == "ok"


async def test_metadata_lists_every_type(api, app):
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    r = await api.get("/fhir/metadata")
    cs = r.json()
    CapabilityStatement.model_validate(cs)
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance" and cs["rest"][0]["mode"] == "server"
    assert "json" in cs["format"]
    types = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert set(types) == set(app.state.services.registry.types)
    required = {"Patient", "Practitioner", "PractitionerRole", "Organization", "Location", "Coverage", "Condition",
                "Encounter", "Procedure", "CarePlan", "ServiceRequest", "Observation", "DocumentReference", "Claim",
                "ClaimResponse", "CoverageEligibilityRequest", "CoverageEligibilityResponse",
                "ExplanationOfBenefit", "PaymentReconciliation", "Task", "AuditEvent"}
    assert required <= set(types)
    enc = types["Encounter"]
    assert {p["name"] for p in enc["searchParam"]} >= {"patient", "subject", "status", "date", "class", "identifier"}
    assert {i["code"] for i in enc["interaction"]} >= {"read", "vread", "update", "delete", "create", "search-type",
                                                        "history-instance", "history-type"}
