"""Every FHIR interaction leaves an AuditEvent; writes audit in their own transaction."""
from __future__ import annotations

import base64

from fhir.resources.R4B.auditevent import AuditEvent

from tests.app.fhir.helpers import patient

EHR = {"x-test-scope": "system/*.cruds", "x-test-client": "ehr-1"}
AUDITOR = {"x-test-scope": "user/AuditEvent.rs", "x-test-client": "audit-app"}


async def events(app, api, **params):
    app.state.services.audit.flush()
    r = await api.get("/fhir/AuditEvent", params=params, headers=AUDITOR)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


async def test_writes_reads_and_searches_are_audited(app, api):
    pid = (await api.post("/fhir/Patient", json=patient(mrn="AUD1"), headers=EHR)).json()["id"]
    await api.get(f"/fhir/Patient/{pid}", headers=EHR)
    await api.get("/fhir/Patient?identifier=urn:mrn|AUD1", headers=EHR)
    found = await events(app, api, patient=pid)
    subtypes = [e["subtype"][0]["code"] for e in found]
    assert subtypes == ["read", "create"]  # newest first
    create = found[1]
    AuditEvent.model_validate(create)
    assert create["action"] == "C" and create["outcome"] == "0"
    assert create["agent"][0]["who"]["identifier"]["value"] == "ehr-1"
    assert {"reference": f"Patient/{pid}"} in [ent.get("what") for ent in create["entity"]]
    searches = [e for e in await events(app, api, action="E") if e["subtype"][0]["code"] == "search-type"]
    query = next(ent["query"] for ent in searches[0]["entity"] if "query" in ent)
    assert "AUD1" in base64.b64decode(query).decode()


async def test_failures_are_audited_and_failed_transactions_leave_no_write_events(app, api):
    assert (await api.get("/fhir/Patient/nobody", headers=EHR)).status_code == 404
    failed = await events(app, api, outcome="4")
    assert failed and failed[0]["entity"][0]["what"]["reference"] == "Patient/nobody"
    txn = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(mrn="AUD-ROLLBACK"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"},
                      "subject": {"reference": "Patient?identifier=urn:mrn|missing"}},
         "request": {"method": "POST", "url": "Encounter"}}]}
    assert (await api.post("/fhir", json=txn, headers=EHR)).status_code == 404
    assert await events(app, api, action="C", outcome="0") == []  # the rolled-back create left no trace
    assert (await events(app, api, outcome="4"))[0]["subtype"][0]["code"] == "transaction"


async def test_audit_trail_is_read_only_and_needs_an_audit_scope(app, api, tenant):
    await api.get("/fhir/Patient", headers=EHR)
    [event] = await events(app, api)
    for method, url in (("POST", "/fhir/AuditEvent"), ("PUT", f"/fhir/AuditEvent/{event['id']}"),
                        ("DELETE", f"/fhir/AuditEvent/{event['id']}")):
        r = await api.request(method, url, json=event, headers={"x-test-scope": "user/*.cruds __admin"})
        assert r.status_code == 405, (method, r.text)
    assert (await api.get("/fhir/AuditEvent", headers={"x-test-scope": "user/*.rs"})).status_code == 403
    assert (await api.get(f"/fhir/AuditEvent/{event['id']}", headers=AUDITOR)).json()["id"] == event["id"]
    other = {**AUDITOR, "x-test-tenant": tenant + "-elsewhere"}
    assert (await api.get(f"/fhir/AuditEvent/{event['id']}", headers=other)).status_code == 404


async def test_writes_of_background_jobs_are_audited_with_the_job_as_agent(app, api, demo_bundle):
    from app.jobs import Worker

    ehr = {**EHR, "Prefer": "return=minimal"}
    assert (await api.post("/fhir", json=demo_bundle, headers=ehr)).status_code == 200
    while Worker(app.state.services.store).run_once():
        pass
    [claim] = (await api.get("/fhir/Claim?encounter=Encounter/enc-alvarez-1", headers=EHR)).json()["entry"]
    written = [e for e in await events(app, api, action="C")
               if {"reference": f"Claim/{claim['resource']['id']}"} in [ent.get("what") for ent in e["entity"]]]
    assert len(written) == 1
    AuditEvent.model_validate(written[0])
    [agent] = written[0]["agent"]
    assert agent["type"]["text"] == "service"
    assert agent["who"]["identifier"] == {"system": "urn:therabridge:service", "value": "worker/generate-claim"}
    patient = claim["resource"]["patient"]["reference"]
    assert {"reference": patient} in [ent.get("what") for ent in written[0]["entity"]]


def test_a_batch_the_writer_holds_at_shutdown_is_still_written(app, tenant):
    """The writer waits ``interval`` for a batch to fill; closing meanwhile must not drop it."""
    import time

    import sqlalchemy as sa

    from app.audit import AUDIT, OUTCOME_OK, AuditLog, interaction_row

    log = AuditLog(app.state.services.store.engine, interval=1.5)
    log.enqueue(interaction_row(None, tenant, "read", outcome=OUTCOME_OK, entity="Patient/held", actor="test"))
    deadline = time.monotonic() + 5
    while log.queue.qsize() and time.monotonic() < deadline:  # until the writer has taken the row
        time.sleep(0.01)
    started = time.monotonic()
    log.close(timeout=10)  # while the writer still waits for more rows
    assert time.monotonic() - started < 5  # close waited for the held batch, not for its timeout
    with log.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(AUDIT).where(
            AUDIT.c.tenant_id == tenant, AUDIT.c.entity == "Patient/held")).scalar()
    assert n == 1
