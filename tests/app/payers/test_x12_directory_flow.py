"""EHR → claim → $submit → 837P in the mailbox → 999/277CA/835 collected → EOB, payment, lifecycle."""
from __future__ import annotations

import copy
from pathlib import Path

from app.payers.inbound import messages, queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config

from tests.flows import (
    NOW, adrain, claim_for, connect, history, jobs, lifecycle, load_practice, make_due, payer_answers_and_collect,
)

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"


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

    _, written, inbound = await payer_answers_and_collect(store, tenant, mailbox)
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


async def test_999_rejection_is_posted_with_reasons_and_not_resubmitted(api, store, tenant, payer_settings,
                                                                         mailbox: Path, demo_bundle,
                                                                         route_to_sandbox):
    """The sandbox's data-file rule ``subscriber-id-refused`` makes the 999 reject the 837P's
    transaction set (IK3/IK4 at 2010BA NM109, IK5*R): the claim is rejected with the 999's
    reasons on a ClaimResponse and a biller Task, and nothing is sent again by itself."""
    bundle = copy.deepcopy(demo_bundle)
    coverage = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "cov-alvarez")
    coverage["subscriberId"] = "MCR999REJECT"
    await load_practice(api, bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)

    box = Mailbox(mailbox, Engine(load_config()), use_pyx12=False)
    written = box.process(NOW)
    assert [w.split("_")[0] for w in written] == ["999"]  # rejected sets get no 277CA or 835
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert [(m["kind"], m["status"]) for m in messages(store, tenant)] == [("999", "posted")]

    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) == "rejected"
    assert "submitted" in history(claim) and "acknowledged" not in history(claim)
    responses = (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}")).json()
    assert responses["total"] == 1
    response = responses["entry"][0]["resource"]
    assert response["outcome"] == "error" and response["disposition"].startswith("Rejected (999")
    codes = {(c["system"].rsplit("/", 1)[-1], c["code"]) for e in response["error"] for c in e["code"]["coding"]}
    assert {("ik5-ack", "R"), ("ik4-error", "7")} <= codes
    texts = " ".join(e["code"]["text"] for e in response["error"])
    assert "NM109" in texts and "loop 2010" in texts and "MCR999REJECT" not in texts
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODES}|claim-rejected")).json()
    assert tasks["total"] == 1
    task = tasks["entry"][0]["resource"]
    assert task["focus"]["reference"] == f"Claim/{claim['id']}" and task["status"] == "requested"
    assert any("Invalid code value" in i["valueString"] for i in task["input"])

    # No automatic resubmission: the one submission job is done, the payer got one file, and more
    # worker rounds and collections send nothing.
    make_due(store, tenant)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert [j.status for j in jobs(store, tenant, "submit-claims")] == ["done"]
    assert list((mailbox / "inbox").iterdir()) == []
    assert [p.name.split("_")[0] for p in (mailbox / "processed").iterdir()] == ["837P"]
    assert box.process(NOW) == [] and box.engine.ledger.summary()["claim_count"] == 0
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "rejected"
