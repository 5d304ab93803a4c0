"""A ``therabridge worker`` process is killed with SIGKILL after the payer took the claim and
before the receipt was recorded; a new worker takes the job over when the lease runs out, finds
the submission at the payer by its key and records it — the payer has the claim exactly once.

The worker is held between sending and recording: while the payer takes two seconds to answer,
this test takes a lock on the Claim's row (PostgreSQL) or on the whole database (SQLite), so the
transaction that would record the receipt waits on it."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from app.fhir.queries import find_resources
from app.jobs import J, Worker
from app.payers.submission import queue_claim

from tests.flows import demo_with_acme, lifecycle, worker_env

TENANT = "killed"
CHC_SUBMIT = "/medicalnetwork/professionalclaims/v3/submission"


WORKER = [sys.executable, "-m", "app.cli", "worker", "--poll-seconds", "0.1"]


def _wait(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_worker_killed_between_sending_and_recording(own_database: str, tmp_path: Path, live_sandbox) -> None:
    _, store = demo_with_acme(own_database, tmp_path, TENANT, live_sandbox.base, timeout=10)
    engine = store.engine
    worker = Worker(store)
    with store.for_tenant(TENANT).unit() as unit:
        claim = next(c for c in find_resources(unit, "Claim", [("encounter", "Encounter/enc-brooks-1")])
                     if lifecycle(c) == "clean")
        queue_claim(unit, claim["id"])
    worker.run_once()  # the claim's batch (of one) is fixed: members and key committed
    with store.for_tenant(TENANT).unit() as unit:
        claim = unit.read("Claim", claim["id"]).resource()
    key = next(i["value"] for i in claim["identifier"] if i["system"].endswith("/submission-key"))

    def job_status() -> str | None:
        with engine.connect() as conn:
            return conn.execute(sa.select(J.c.status).where(J.c.tenant_id == TENANT,
                                                            J.c.kind == "send-claim-batch")).scalar()

    live_sandbox.fault(CHC_SUBMIT, "sleep", count=1, seconds=2.0)  # the payer takes its time answering
    proc = subprocess.Popen(WORKER, env=worker_env(own_database, tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    holder = None
    try:
        _wait(lambda: job_status() == "running")  # claimed; the payer call is under way
        if store.postgres:
            holder = engine.connect()
            holder.begin()
            holder.exec_driver_sql("SELECT pk FROM resource WHERE tenant_id = %s AND type = 'Claim' AND id = %s "
                                   "FOR UPDATE", (TENANT, claim["id"]))
        else:
            holder = sqlite3.connect(sa.engine.make_url(own_database).database, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
        _wait(lambda: live_sandbox.sent(key) == 1)  # the payer has it …
        time.sleep(1.0)  # … and the worker waits on the lock to record it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if holder is not None:
            holder.rollback() if store.postgres else holder.execute("ROLLBACK")
            holder.close()

    with store.for_tenant(TENANT).unit() as unit:
        assert lifecycle(unit.read("Claim", claim["id"]).resource()) == "queued"  # nothing recorded
    with engine.begin() as conn:  # the dead worker's lease runs out
        [job] = conn.execute(sa.select(J.c.pk, J.c.status).where(J.c.tenant_id == TENANT,
                                                                 J.c.kind == "send-claim-batch")).all()
        assert job.status == "running"
        conn.execute(J.update().where(J.c.pk == job.pk).values(
            locked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))

    restarted = subprocess.run([*WORKER, "--once"], env=worker_env(own_database, tmp_path), capture_output=True,
                               timeout=120)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    with store.for_tenant(TENANT).unit() as unit:
        claim = unit.read("Claim", claim["id"]).resource()
    assert lifecycle(claim) != "queued"
    receipt = next(e for e in claim["extension"] if e["url"].endswith("/claim-submission"))
    assert {"url": "replayed", "valueBoolean": True} in receipt["extension"]  # found at the payer, not re-sent
    assert live_sandbox.sent(key) == 1
    engine.dispose()
