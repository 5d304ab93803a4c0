"""Two workers (separate engines, as separate processes would have) race for many
``submit-claims`` jobs on PostgreSQL: every claim reaches the payer exactly once."""
from __future__ import annotations

import copy
import threading

import pytest

from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
from app.jobs import Worker
from app.payers.submission import queue_claim

from tests.flows import SANDBOX, adrain, claim_for, connect, jobs, lifecycle, load_practice

PCN = "https://therabridge.dev/fhir/sid/patient-control-number"
N = 30


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the multi-worker race needs PostgreSQL (SKIP LOCKED); SQLite runs one worker")


async def test_two_workers_send_each_claim_once(postgres_only, api, store, tenant, payer_settings, demo_bundle,
                                                database_url, route_to_sandbox, ledger):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"})
    await adrain(store)
    template = await claim_for(api, "enc-brooks-1")
    suffix = tenant[-6:].upper()
    with store.for_tenant(tenant).unit() as unit:
        for n in range(N):
            claim = copy.deepcopy(template)
            pcn = f"R{n:03d}{suffix}"
            claim["identifier"] = [{"system": PCN, "value": pcn}]
            for i, item in enumerate(claim["item"], start=1):
                for ext in item.get("extension", []):
                    ext["valueString"] = f"{pcn}-{i}"
            unit.create(claim, rid=f"race-{n}-{tenant}")
            assert queue_claim(unit, f"race-{n}-{tenant}")[1] == 202

    def run() -> None:
        worker = Worker(Store(make_engine(database_url), registry(), base_url=store.base_url), batch=3)
        while worker.run_once():
            pass

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = jobs(store, tenant, "submit-claims")
    assert len(done) == N and {j.status for j in done} == {"done"} and {j.attempts for j in done} == {1}
    sent = ledger()["by_patient_control_number"]
    assert all(sent[f"R{n:03d}{suffix}"] == 1 for n in range(N))
    for n in (0, N - 1):
        claim = (await api.get(f"/fhir/Claim/race-{n}-{tenant}")).json()
        assert lifecycle(claim) != "queued"
