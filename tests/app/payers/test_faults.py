"""Fault tests through a real sandbox payer process: outages, timeouts, cut connections and a
worker that dies between sending and recording — the payer sees every claim exactly once."""
from __future__ import annotations

import asyncio

from app import jobs as job_queue
from app.payers import inbound, submission

from tests.flows import adrain, claim_for, connect, jobs, lifecycle, load_practice, make_due

CHC_SUBMIT = "/medicalnetwork/professionalclaims/v3/submission"
PAS_SUBMIT = "/fhir/Claim/$submit"


def key_of(claim):
    return next(i["value"] for i in claim["identifier"] if i["system"].endswith("/submission-key"))


async def _acme(api, store, tenant, payer_settings, demo_bundle, live, **cfg):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json",
            {"base_url": live.base, "timeout": 1, **cfg}, {"api_key": "test_sandbox_key"}, profile="commercial")
    await adrain(store)
    claim = await claim_for(api, "enc-brooks-1")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    return (await api.get(f"/fhir/Claim/{claim['id']}")).json()


async def _retry_until_done(store, tenant, rounds=4):
    for _ in range(rounds):
        await adrain(store)
        if all(j.status == "done" for j in jobs(store, tenant, "send-claim-batch")):
            return
        await asyncio.sleep(0.05)
        make_due(store, tenant)


async def test_payer_500_then_success(api, store, tenant, payer_settings, demo_bundle, live_sandbox, route_to_live):
    live_sandbox.fault(CHC_SUBMIT, "500", count=2)
    claim = await _acme(api, store, tenant, payer_settings, demo_bundle, live_sandbox)
    await adrain(store, base_delay=60)  # one attempt: the retry is not due yet
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "queued" and "HTTP 500" in job.last_error
    await _retry_until_done(store, tenant)
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "done" and job.attempts == 3
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) != "queued"
    assert live_sandbox.sent(key_of(claim)) == 1


async def test_timeout_and_dropped_answer_are_retried_once_at_the_payer(api, store, tenant, payer_settings,
                                                                      demo_bundle, live_sandbox, route_to_live):
    live_sandbox.fault(CHC_SUBMIT, "sleep", count=1, seconds=2.5)  # past the 1 s client timeout
    claim = await _acme(api, store, tenant, payer_settings, demo_bundle, live_sandbox)
    await adrain(store, base_delay=60)
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "queued" and "timed out" in job.last_error
    live_sandbox.fault(CHC_SUBMIT, "drop-after", count=1)  # payer keeps the claim, answer is cut
    await asyncio.sleep(2.0)  # let the slow first call finish at the payer
    await _retry_until_done(store, tenant, rounds=6)
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "done"
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    receipt = next(e for e in claim["extension"] if e["url"].endswith("/claim-submission"))
    assert {"url": "replayed", "valueBoolean": True} in receipt["extension"]  # the key replayed the first answer
    assert live_sandbox.sent(key_of(claim)) == 1


async def test_worker_killed_after_sending_does_not_send_again(api, store, tenant, payer_settings, demo_bundle,
                                                               live_sandbox, route_to_live, monkeypatch):
    """x12-directory: find_submission reads the file back; fhir-payer: the ClaimResponse by key."""
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(live_sandbox.mailbox)})
    connect(store, payer_settings, tenant, "payer-acme", "fhir-payer",
            {"base_url": f"{live_sandbox.base}/fhir", "auth": "client_secret",
             "token_url": f"{live_sandbox.base}/oauth/token", "client_id": "demo-client"},
            {"client_secret": "demo-secret"})
    await adrain(store)
    ids = [(await claim_for(api, e))["id"] for e in ("enc-alvarez-1", "enc-brooks-1")]
    for cid in ids:
        assert (await api.post(f"/fhir/Claim/{cid}/$submit")).status_code == 202

    def killed(unit, batch, members, receipt):
        raise RuntimeError("worker killed before recording")  # the send happened; nothing recorded

    def not_yet(ts, payload):
        raise RuntimeError("collection held")  # the payer's answers wait until the retry below

    monkeypatch.setattr(submission, "_record", killed)
    monkeypatch.setitem(job_queue.OWN_TRANSACTION, inbound.COLLECT, not_yet)
    await adrain(store, base_delay=60)  # one attempt each; the retry is not due yet
    monkeypatch.undo()
    claims = [(await api.get(f"/fhir/Claim/{cid}")).json() for cid in ids]
    assert [lifecycle(c) for c in claims] == ["queued", "queued"]  # nothing recorded
    make_due(store, tenant)
    await adrain(store)
    for cid in ids:
        claim = (await api.get(f"/fhir/Claim/{cid}")).json()
        assert lifecycle(claim) != "queued"
        receipt = next(e for e in claim["extension"] if e["url"].endswith("/claim-submission"))
        assert {"url": "replayed", "valueBoolean": True} in receipt["extension"]
    files = [p.name for d in ("inbox", "processed") if (live_sandbox.mailbox / d).exists()
             for p in (live_sandbox.mailbox / d).iterdir() if key_of(claims[0]) in p.name]
    assert len(files) == 1
    assert live_sandbox.sent(key_of(claims[1])) == 1
