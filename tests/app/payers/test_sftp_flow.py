"""The whole flow over ``x12-sftp`` through the server: the payer connection registered at
``/admin/payers`` (the SSH key stored encrypted), ``$submit``, the worker uploading the 837P to a
real OpenSSH sshd on loopback, the sandbox payer answering in that mailbox, collection over SFTP,
posting — lifecycle, EOB and payment on the Claim."""
from __future__ import annotations

import sqlalchemy as sa

from app.payers.inbound import messages, queue_collection
from app.directory.tables import CONNECTIONS

from tests.flows import adrain, admin_headers, claim_for, history, jobs, lifecycle, load_practice, payer_answers_and_collect


async def test_x12_sftp_round_trip_through_the_server(api, store, tenant, demo_bundle, sshd, route_to_sandbox):
    # route_to_sandbox: the worker's payer runtime uses this session's settings (credential key);
    # the SFTP adapter itself speaks SSH to sshd, not HTTP.
    await load_practice(api, demo_bundle)
    settings = sshd.adapter_settings()
    key = settings.pop("private_key")
    r = await api.post("/admin/payers", headers=await admin_headers(api, store.engine, tenant), json={
        "organization": "payer-medicare", "kind": "x12-sftp", "settings": settings,
        "credentials": {"private_key": key}, "profile": "medicare"})
    assert r.status_code == 201, r.text
    assert r.json()["hasCredentials"] and "PRIVATE KEY" not in r.text
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(CONNECTIONS.c.credentials, CONNECTIONS.c.settings)
                              .where(CONNECTIONS.c.tenant_id == tenant)).one()
    assert "PRIVATE KEY" not in stored.credentials and "PRIVATE KEY" not in stored.settings

    await adrain(store)  # the finished visits become claims (no auto-submit for this payer)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"
    r = await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    assert r.status_code == 202, r.text
    await adrain(store)
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) == "submitted"
    [job] = jobs(store, tenant, "submit-claims")
    assert job.status == "done" and job.attempts == 1
    sent = [p.name for p in (sshd.mailbox / "inbox").iterdir()]
    assert len(sent) == 1 and sent[0].startswith("837P_")  # uploaded over SFTP, complete (no .part left)

    payer, written, inbound = await payer_answers_and_collect(store, tenant, sshd.mailbox)  # the payer's side
    assert {(m["content_type"], m["status"]) for m in inbound} == {("x12", "posted")}
    assert list((sshd.mailbox / "outbox").iterdir()) == []  # acknowledged: archived over SFTP
    assert sorted(p.name for p in (sshd.mailbox / "archive").iterdir()) == sorted(written)

    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) in ("paid", "partially-paid")
    assert ["queued", "submitted", "acknowledged", "accepted"] == history(claim)[:4]
    eobs = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()
    assert eobs["total"] == 1
    eob = eobs["entry"][0]["resource"]
    assert eob["claim"]["reference"] == f"Claim/{claim['id']}" and eob["payment"]["amount"]["value"] > 0
    carcs = {a["reason"]["coding"][0]["code"] for i in eob["item"] for a in i["adjudication"] if "reason" in a}
    assert {"45", "1"} <= carcs  # Medicare: fee schedule write-off, then the deductible left
    recon = (await api.get("/fhir/PaymentReconciliation")).json()
    assert recon["total"] == 1 and recon["entry"][0]["resource"]["paymentAmount"]["value"] == eob["payment"]["amount"]["value"]
    assert payer.engine.ledger.summary()["by_patient_control_number"] == {
        next(i["value"] for i in claim["identifier"] if i["system"].endswith("/patient-control-number")): 1}

    # Collected again: nothing new over SFTP, nothing posted twice.
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert len(messages(store, tenant)) == 3
    assert (await api.get("/fhir/ExplanationOfBenefit")).json()["total"] == 1
