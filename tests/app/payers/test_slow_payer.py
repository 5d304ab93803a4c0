"""A payer that answers one byte at a time never trips a per-read timeout; every payer call has a
total deadline instead. Past it the call is a transport failure (counted by the circuit breaker,
retried by the outbox) — over a payer API (the sandbox process trickling its answers on a
loopback socket), over SFTP (a peer trickling its greeting) and into a mailbox directory whose
file system does not answer — and real-time eligibility answers 202 within its timeout."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import asyncssh
import pytest
import sqlalchemy as sa

from app.jobs import J, Worker
from app.payers import runtime as payer_runtime
from app.payers.models import CIRCUITS
from fhir_mappings.vocabulary import ELIGIBILITY_TRACE
from payer_adapters.x12_files import safe_key

from tests.flows import adrain, claim_for, connect, jobs, lifecycle, load_practice, make_due
from tests.app.payers.trickle import TricklingPeer

CHC_ELIGIBILITY = "/medicalnetwork/eligibility/v3"
CHC_REPORTS = "/medicalnetwork/reports/v2"


@pytest.fixture
def deadlines(payer_settings) -> Iterator[Callable[..., None]]:
    """``deadlines(payer_deadline_reports=2.0, …)``: settings for this test, same HTTP clients."""
    previous = payer_runtime.current()

    def apply(**values: Any) -> None:
        rt = payer_runtime.runtime()
        payer_runtime.configure(rt.settings.model_copy(update=values), rt.http_factory)
    yield apply
    payer_runtime.use(previous)


def run_worker(store: Any, within: float) -> float:
    """Run the due jobs on a worker thread (retries back off, so a failed job is left queued);
    the seconds it took. Fails if it is still busy after ``within`` seconds."""
    started = time.monotonic()
    worker = Worker(store)

    def drain() -> None:
        while worker.run_once():
            pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"the worker is still busy with the payer after {within} s"
    return time.monotonic() - started


def circuit(store: Any, link: Any, operation: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(CIRCUITS).where(CIRCUITS.c.connection_pk == link.pk,
                                                      CIRCUITS.c.operation == operation)).first()


def only_job(store: Any, tenant: str, kind: str) -> Any:
    [job] = jobs(store, tenant, kind)
    return job


def cut_off(job: Any) -> bool:
    """Failed once at its deadline, and waiting to be retried."""
    return job.status == "queued" and job.attempts == 1 and "PayerDeadlineExceeded" in (job.last_error or "")


async def test_realtime_eligibility_answers_within_its_timeout(api, store, tenant, payer_settings, demo_bundle,
                                                              live_sandbox, route_to_live, deadlines):
    deadlines(eligibility_timeout=2.0)
    await load_practice(api, demo_bundle)
    link = connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json",
                   {"base_url": live_sandbox.base}, {"api_key": "test_sandbox_key"})
    r = await api.post("/fhir/Coverage/cov-brooks/$eligibility-request",
                       params={"servicedDate": "2026-11-23", "discipline": "OT"})
    rid = r.json()["id"]
    live_sandbox.fault(CHC_ELIGIBILITY, "trickle", count=1, seconds=0.5)

    started = time.monotonic()
    r = await asyncio.wait_for(api.post(f"/fhir/CoverageEligibilityRequest/{rid}/$submit"), 30)
    assert r.status_code == 202, r.text
    assert time.monotonic() - started < 2.0 + 3.0  # the timeout, and the database work around it
    where = r.headers["content-location"]
    assert where.endswith(f"/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{rid}")
    row = circuit(store, link, "eligibility")
    assert row.failures == 1 and "PayerDeadlineExceeded" in row.last_error

    await adrain(store)  # the outbox asks again; the payer answers at its normal pace now
    found = (await api.get("/fhir" + where.split("/fhir", 1)[1])).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["insurance"][0]["inforce"] is True


async def test_a_trickling_report_list_is_cut_off_and_collected_later(api, store, tenant, payer_settings, demo_bundle,
                                                                     live_sandbox, route_to_live, deadlines):
    from app.payers.inbound import queue_collection

    deadlines(payer_deadline_reports=2.0)
    await load_practice(api, demo_bundle)
    link = connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json",
                   {"base_url": live_sandbox.base}, {"api_key": "test_sandbox_key"})
    with store.engine.begin() as conn:  # this test runs its collection itself
        conn.execute(J.delete().where(J.c.tenant_id == tenant))
    with store.for_tenant(tenant).unit() as unit:
        assert queue_collection(unit) == 1
    live_sandbox.fault(CHC_REPORTS, "trickle", count=1, seconds=1.0)  # a short list: 15 s or so in all

    assert await asyncio.to_thread(run_worker, store, 20) < 2.0 + 5.0
    assert cut_off(only_job(store, tenant, "collect-responses"))
    row = circuit(store, link, "reports")
    assert row.failures == 1 and "PayerDeadlineExceeded" in row.last_error

    make_due(store, tenant)
    await adrain(store)
    assert only_job(store, tenant, "collect-responses").status == "done"
    assert circuit(store, link, "reports").failures == 0


async def test_a_claim_upload_to_a_trickling_sftp_server_is_cut_off(api, store, tenant, payer_settings, demo_bundle,
                                                                   route_to_sandbox, deadlines):
    # SFTP's own connect timeout (15 s) is longer than the deadline: the deadline ends the call.
    deadlines(payer_deadline_claims=1.5)
    peer = TricklingPeer(gap=0.5)
    try:
        await load_practice(api, demo_bundle)
        host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        link = connect(store, payer_settings, tenant, "payer-medicare", "x12-sftp",
                       {"host": "127.0.0.1", "port": peer.port, "username": "billing", "host_key": host_key},
                       {"password": "not-used"}, profile="medicare")
        with store.engine.begin() as conn:  # this test is about the upload: no scheduled collections
            conn.execute(J.delete().where(J.c.tenant_id == tenant, J.c.kind == "collect-schedule"))
        await adrain(store)  # the finished visits become claims
        claim = await claim_for(api, "enc-alvarez-1")
        assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202

        assert await asyncio.to_thread(run_worker, store, 12) < 1.5 + 5.0
        assert peer.connections >= 1
        assert cut_off(only_job(store, tenant, "send-claim-batch"))
        row = circuit(store, link, "claims")
        assert row.failures == 1 and "PayerDeadlineExceeded" in row.last_error
        assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "queued"
    finally:
        peer.close()


async def test_a_hung_mailbox_file_system_is_cut_off(api, store, tenant, payer_settings, demo_bundle, mailbox,
                                                    route_to_sandbox, deadlines):
    # A file the 270 is written to that never takes the bytes (a FIFO nobody reads: open() blocks,
    # as on a hung network mount). The call returns at its deadline, not when the disk does.
    deadlines(payer_deadline_eligibility=1.5)
    await load_practice(api, demo_bundle)
    link = connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    with store.engine.begin() as conn:
        conn.execute(J.delete().where(J.c.tenant_id == tenant, J.c.kind == "collect-schedule"))
    r = await api.post("/fhir/Coverage/cov-alvarez/$eligibility-request",
                       params={"servicedDate": "2026-11-23", "discipline": "OT"})
    rid = r.json()["id"]
    assert (await api.post(f"/fhir/CoverageEligibilityRequest/{rid}/$submit")).status_code == 202
    stored = (await api.get(f"/fhir/CoverageEligibilityRequest/{rid}")).json()
    trace = next(i["value"] for i in stored["identifier"] if i["system"] == ELIGIBILITY_TRACE)
    (mailbox / "inbox").mkdir(parents=True, exist_ok=True)
    fifo = mailbox / "inbox" / f".270_{safe_key(trace)}.x12.part"
    os.mkfifo(fifo)
    try:
        assert await asyncio.to_thread(run_worker, store, 12) < 1.5 + 5.0
        assert cut_off(only_job(store, tenant, "check-eligibility"))
        row = circuit(store, link, "eligibility")
        assert row.failures == 1 and "PayerDeadlineExceeded" in row.last_error
    finally:
        _unblock(fifo)


def _unblock(fifo: Path) -> None:
    """Open the FIFO's reading end for a moment: the writer left behind gets past its open() and
    ends (its write fails once the reader is gone), so no thread outlives the test blocked."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    time.sleep(0.5)
    os.close(fd)
