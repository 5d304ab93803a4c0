"""Inbound answers: the same 835 twice is posted once; an unreadable file is quarantined with a
Task while the rest is posted; a held claim cannot be submitted."""
from __future__ import annotations

from pathlib import Path

from app.payers.inbound import messages, queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config

from tests.flows import MEDICARE_VISITS, NOW, adrain, claim_for, connect, jobs, lifecycle, load_practice


async def _submitted_and_answered(api, store, tenant, payer_settings, demo_bundle, mailbox: Path) -> tuple[dict, Mailbox]:
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare", auto_submit=True)
    await adrain(store)
    box = Mailbox(mailbox, Engine(load_config()), use_pyx12=False)
    box.process(NOW)
    return await claim_for(api, "enc-alvarez-1"), box


def _collect(store, tenant) -> None:
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)


async def test_same_835_twice_is_posted_once(api, store, tenant, payer_settings, demo_bundle, mailbox,
                                             route_to_sandbox):
    claim, box = await _submitted_and_answered(api, store, tenant, payer_settings, demo_bundle, mailbox)
    _collect(store, tenant)
    await adrain(store)
    first = messages(store, tenant)
    eobs = (await api.get("/fhir/ExplanationOfBenefit")).json()["total"]
    assert eobs == len(MEDICARE_VISITS)  # the Medicare claims, which went out together in one file
    [remit] = [m for m in first if m["kind"] == "835" and m["name"].endswith(".x12")][:1]

    # Byte for byte again: stored once (SHA-256), acknowledged, nothing posted.
    again = box.redeliver(Path(remit["name"]).name)
    # The same payment in a new envelope (another ISA13): stored, recognized by TRN02 + payer id.
    data = (mailbox / "archive" / Path(remit["name"]).name).read_text()
    isa13 = data.split(data[3])[13]
    (mailbox / "outbox" / "835_reenveloped.x12").write_text(data.replace(isa13, "987654321"))
    _collect(store, tenant)
    await adrain(store)
    after = messages(store, tenant)
    assert len(after) == len(first) + 1
    assert [m["status"] for m in after if m["name"].endswith("835_reenveloped.x12")] == ["duplicate"]
    assert not (mailbox / "outbox" / again).exists()  # acknowledged even though already stored
    assert (await api.get("/fhir/ExplanationOfBenefit")).json()["total"] == eobs
    assert (await api.get("/fhir/PaymentReconciliation")).json()["total"] == 1  # one file, one 835


async def test_corrupt_file_is_quarantined_and_the_rest_posted(api, store, tenant, payer_settings, demo_bundle,
                                                               mailbox, route_to_sandbox):
    claim, _ = await _submitted_and_answered(api, store, tenant, payer_settings, demo_bundle, mailbox)
    (mailbox / "outbox" / "835_garbage.x12").write_bytes(b"ISA*00*this is not an interchange~GS*HP~")
    _collect(store, tenant)
    await adrain(store)
    inbound = messages(store, tenant)
    bad = [m for m in inbound if m["name"].endswith("835_garbage.x12")]
    assert [m["status"] for m in bad] == ["quarantined"] and bad[0]["error"]
    assert {m["status"] for m in inbound if m not in bad} == {"posted"}
    tasks = (await api.get("/fhir/Task?code=https://therabridge.dev/fhir/CodeSystem/task-code|inbound-quarantined")).json()
    assert tasks["total"] == 1
    assert "835_garbage.x12" in tasks["entry"][0]["resource"]["description"]
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) in ("paid", "partially-paid", "denied")
    assert all(j.status == "done" for j in jobs(store, tenant, "post-response"))


async def test_held_claim_answers_422_and_unknown_payer_too(api, store, tenant, payer_settings, demo_bundle,
                                                            route_to_sandbox):
    await load_practice(api, demo_bundle)
    await adrain(store)
    kim = await claim_for(api, "enc-kim-1")
    assert lifecycle(kim) == "draft"
    r = await api.post(f"/fhir/Claim/{kim['id']}/$submit")
    assert r.status_code == 422
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "error" for i in body["issue"])
    brooks = await claim_for(api, "enc-brooks-1")  # clean, but no connection for Acme
    r = await api.post(f"/fhir/Claim/{brooks['id']}/$submit")
    assert r.status_code == 422 and "payer connection" in r.text
    assert jobs(store, tenant, "submit-claims") == []
    assert (await api.post("/fhir/Claim/nope/$submit")).status_code == 404
