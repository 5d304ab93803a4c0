"""Every path to AuditEvent follows the rules of the direct routes: no client creates, changes or
deletes one (405 everywhere, Bundle entries included), and reading the trail needs a scope that
names AuditEvent, whether asked directly, inside a Bundle, through history or an include."""
from __future__ import annotations

import pytest

from tests.app.fhir.helpers import patient

EHR = {"x-test-scope": "user/*.cruds", "x-test-client": "ehr-1"}  # wildcard: no audit access
EVERYTHING = {"x-test-scope": "user/*.cruds user/AuditEvent.cruds __admin", "x-test-client": "root"}
AUDITOR = {"x-test-scope": "user/AuditEvent.rs", "x-test-client": "audit-app"}
MARK = "forged-by-a-client"


def forged(patient_id: str = "p1", rid: str | None = None) -> dict:
    doc = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2024-01-01T00:00:00Z",
           "agent": [{"requestor": True, "who": {"display": "nobody"}}], "source": {"observer": {"display": "x"}},
           "outcomeDesc": MARK, "entity": [{"what": {"reference": f"Patient/{patient_id}"}}]}
    if rid:
        doc["id"] = rid
    return doc


def plant(tenant_store, rid: str, patient_id: str) -> None:
    """An AuditEvent row in the resource tenant_store, as clients could forge before every path was
    gated: written below the gate, with the tenant_store's own insert."""
    with tenant_store.unit() as unit:
        unit._insert("AuditEvent", rid, forged(patient_id, rid), version_id=1)


WRITES = [
    ("POST", "AuditEvent", True),
    ("PUT", "AuditEvent/forged-1", True),
    ("PUT", "AuditEvent?outcome=0", True),
    ("DELETE", "AuditEvent/forged-1", False),
    ("DELETE", "AuditEvent?outcome=0", False),
    ("PATCH", "AuditEvent/forged-1", False),
]


@pytest.mark.parametrize("method,url,with_resource", WRITES)
async def test_a_transaction_cannot_write_an_audit_event(api, tenant_store, method, url, with_resource):
    entry = {"request": {"method": method, "url": url}}
    if with_resource:
        entry["resource"] = forged(rid="forged-1" if "/" in url else None)
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": patient(mrn="TX-AUD"), "request": {"method": "POST", "url": "Patient"}}, entry]}
    r = await api.post("/fhir", json=bundle, headers=EVERYTHING)
    assert r.status_code == 405, r.text
    assert r.json()["issue"][0]["expression"][0].startswith("Bundle.entry[1]")
    assert tenant_store.search(_all_audit_rows(tenant_store)).matches == []
    assert (await api.get("/fhir/Patient?identifier=urn:mrn|TX-AUD", headers=EHR)).json()["total"] == 0


async def test_a_batch_cannot_write_an_audit_event(api, tenant_store):
    entries = []
    for method, url, with_resource in WRITES:
        entry = {"request": {"method": method, "url": url}}
        if with_resource:
            entry["resource"] = forged(rid="forged-1" if "/" in url else None)
        entries.append(entry)
    r = await api.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries}, headers=EVERYTHING)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["405 Method Not Allowed"] * len(WRITES)
    assert tenant_store.search(_all_audit_rows(tenant_store)).matches == []


def test_the_store_refuses_audit_event_writes_from_any_caller(tenant_store):
    """The command-line loader and the server's jobs write through the tenant_store: same rule."""
    from app.fhir.errors import FhirError

    for write in (lambda u: u.create(forged()), lambda u: u.update("AuditEvent", "x", forged(rid="x")),
                  lambda u: u.delete("AuditEvent", "x")):
        with pytest.raises(FhirError) as err, tenant_store.unit() as unit:
            write(unit)
        assert err.value.status == 405


async def test_batch_reads_of_audit_events_need_the_audit_scope_and_read_the_trail(app, api, tenant_store):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="AUD-B"), headers=EHR)).json()["id"]
    plant(tenant_store, "forged-b", pid)
    app.state.services.audit.flush()
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"AuditEvent?patient={pid}"}},
        {"request": {"method": "GET", "url": "AuditEvent/forged-b"}},
        {"request": {"method": "GET", "url": "AuditEvent/forged-b/_history/1"}}]}
    refused = (await api.post("/fhir", json=bundle, headers=EHR)).json()["entry"]
    assert [e["response"]["status"] for e in refused] == ["403 Forbidden", "403 Forbidden", "405 Method Not Allowed"]
    allowed = (await api.post("/fhir", json=bundle, headers=AUDITOR)).json()["entry"]
    assert [e["response"]["status"][:3] for e in allowed] == ["200", "404", "405"]
    trail = allowed[0]["resource"]
    assert trail["type"] == "searchset" and trail["total"] >= 1
    assert all(e["resource"]["outcomeDesc"] != MARK for e in trail["entry"] if "outcomeDesc" in e["resource"])
    assert {"reference": f"Patient/{pid}"} in [x.get("what") for x in trail["entry"][0]["resource"]["entity"]]
    # The same search directly answers the same trail.
    direct = (await api.get(f"/fhir/AuditEvent?patient={pid}", headers=AUDITOR)).json()
    assert [e["fullUrl"] for e in direct["entry"]] == [e["fullUrl"] for e in trail["entry"]]
    # A transaction's GET entries pass the same gate.
    txn = {**bundle, "type": "transaction", "entry": bundle["entry"][:1]}
    assert (await api.post("/fhir", json=txn, headers=EHR)).status_code == 403


async def test_history_never_serves_audit_events(api, tenant_store, tenant):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="AUD-H"), headers=EHR)).json()["id"]
    plant(tenant_store, "forged-h", pid)
    system = await api.get("/fhir/_history", headers=EHR)
    assert system.status_code == 200, system.text
    types = {e["fullUrl"].split("/")[-2] for e in system.json()["entry"]}
    assert "Patient" in types and "AuditEvent" not in types
    for url in ("/fhir/AuditEvent/_history", "/fhir/AuditEvent/forged-h/_history",
                "/fhir/AuditEvent/forged-h/_history/1"):
        for headers in (EHR, AUDITOR):
            r = await api.get(url, headers=headers)
            assert r.status_code == 405, (url, r.text)


async def test_searches_and_includes_never_reach_audit_events_in_the_store(app, api, tenant_store):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="AUD-I"), headers=EHR)).json()["id"]
    plant(tenant_store, "forged-i", pid)
    r = await api.get(f"/fhir/Patient?_id={pid}&_revinclude=AuditEvent:patient", headers=EVERYTHING)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["_revinclude"]
    assert (await api.post("/fhir/AuditEvent/_search", data={"patient": pid}, headers=EHR)).status_code == 403
    app.state.services.audit.flush()
    found = (await api.post("/fhir/AuditEvent/_search", data={"patient": pid}, headers=AUDITOR)).json()
    assert found["entry"] and all(e["resource"].get("outcomeDesc") != MARK for e in found["entry"])
    assert (await api.get("/fhir/AuditEvent/forged-i", headers=AUDITOR)).status_code == 404
    assert (await api.delete("/fhir/AuditEvent?outcome=0", headers=EVERYTHING)).status_code == 405


async def test_the_capability_statement_offers_only_reading_audit_events(api):
    statement = (await api.get("/fhir/metadata")).json()
    [audit] = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert [i["code"] for i in audit["interaction"]] == ["read", "search-type"]
    assert not audit["updateCreate"] and not audit["conditionalCreate"]
    [patient_entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert not any(x.startswith("AuditEvent:") for x in patient_entry["searchRevInclude"])


async def test_an_audit_event_id_past_the_integer_range_is_not_found(api):
    assert (await api.get("/fhir/AuditEvent/99999999999999999999999", headers=AUDITOR)).status_code == 404


def _all_audit_rows(tenant_store):
    from app.fhir.registry import registry
    from app.fhir.search_params import parse_search

    return parse_search(registry().get("AuditEvent"), [], registry=registry())
