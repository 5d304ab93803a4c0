"""EHR → claim → $submit → 837P in the mailbox → 999/277CA/835 collected → EOB, payment, lifecycle."""
from __future__ import annotations

from pathlib import Path

from app.payers.inbound import messages, queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config

from .conftest import NOW, adrain, claim_for, connect, history, jobs, lifecycle, load_practice


async def test_x12_directory_round_trip(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                        route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)  # generate the claims (no auto-submit)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"

    r = await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    assert r.status_code == 202, r.text
    assert lifecycle(r.json()) == "queued"
    again = await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    assert again.status_code == 200 and lifecycle(again.json()) == "queued"
    assert len(jobs(store, tenant, "submit-claims")) == 1

    await adrain(store)
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) == "submitted"
    sent = sorted(p.name for p in (mailbox / "inbox").iterdir())
    assert len(sent) == 1 and sent[0].startswith("837P_")

    box = Mailbox(mailbox, Engine(load_config()), use_pyx12=False)
    written = box.process(NOW)
    assert [w.split("_")[0] for w in written] == ["999", "277CA", "835"]

    with store.for_tenant(tenant).unit() as unit:
        assert queue_collection(unit) == 1
    await adrain(store)
    inbound = messages(store, tenant)
    assert sorted(m["kind"] for m in inbound) == ["277CA", "835", "999"]
    assert {m["status"] for m in inbound} == {"posted"}
    assert sorted(p.name for p in (mailbox / "archive").iterdir()) == sorted(written)  # acknowledged after storing

    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) in ("paid", "partially-paid", "denied")
    assert {"queued", "submitted", "acknowledged", "accepted"} <= set(history(claim))
    eobs = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()
    assert eobs["total"] == 1
    eob = eobs["entry"][0]["resource"]
    assert eob["claim"]["reference"] == f"Claim/{claim['id']}"
    assert (await api.get("/fhir/PaymentReconciliation")).json()["total"] == 1
    responses = (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}")).json()
    assert responses["total"] >= 1 and responses["entry"][0]["resource"]["outcome"] == "queued"
