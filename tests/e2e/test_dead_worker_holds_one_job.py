"""A ``therabridge worker`` process dies (SIGKILL) while the payer takes its time over one claim.
Only the job it was running waits for its lease to run out: the other claims waiting to go were
never leased by it, so a second worker sends them at once."""
from __future__ import annotations

import copy
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from app.fhir.queries import find_resources
from app.jobs import J, Worker
from app.payers.submission import queue_claim
from tests.e2e.test_worker_killed import CHC_SUBMIT, WORKER, _wait
from fhir_mappings.vocabulary import PATIENT_CONTROL_NUMBER
from tests.flows import demo_with_acme, lifecycle, worker_env

TENANT = "dead-worker"
CLAIMS = 4


def _sends(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(J.c.status, J.c.locked_by, J.c.attempts, J.c.last_error).where(
            J.c.tenant_id == TENANT, J.c.kind == "send-claim-batch").order_by(J.c.pk)).all()


def test_a_dead_worker_delays_only_the_job_it_was_running(own_database: str, tmp_path: Path, live_sandbox) -> None:
    _, store = demo_with_acme(own_database, tmp_path, TENANT, live_sandbox.base, timeout=30)
    engine = store.engine
    worker = Worker(store)
    with store.for_tenant(TENANT).unit() as unit:
        template = next(c for c in find_resources(unit, "Claim", [("encounter", "Encounter/enc-brooks-1")])
                        if lifecycle(c) == "clean")
        for n in range(CLAIMS):  # claims to one payer API, one call each
            claim = copy.deepcopy(template)
            claim["identifier"] = [{"system": PATIENT_CONTROL_NUMBER, "value": f"DEAD{n:03d}"}]
            for i, item in enumerate(claim["item"], start=1):
                for ext in item.get("extension", []):
                    ext["valueString"] = f"DEAD{n:03d}-{i}"
            unit.create(claim, rid=f"dead-{n}")
            queue_claim(unit, f"dead-{n}")
    assert worker.run_once() == CLAIMS  # batches formed: one send-claim-batch job per claim, none sent yet
    assert [s.status for s in _sends(engine)] == ["queued"] * CLAIMS

    live_sandbox.fault(CHC_SUBMIT, "sleep", count=1, seconds=120)  # the payer sits on the first claim
    proc = subprocess.Popen(WORKER, env=worker_env(own_database, tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: any(s.status == "running" for s in _sends(engine)))
        time.sleep(0.5)  # the call is under way
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    sends = _sends(engine)
    assert [s.status for s in sends].count("queued") == CLAIMS - 1  # it held one job only
    [dead_lease] = [s.locked_by for s in sends if s.status == "running"]

    started = time.monotonic()
    restarted = subprocess.run([*WORKER, "--once"], env=worker_env(own_database, tmp_path), capture_output=True,
                               timeout=120)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert time.monotonic() - started < 60  # well inside the dead worker's lease (120 s)
    sends = _sends(engine)
    held = [s for s in sends if s.locked_by == dead_lease]
    assert len(held) == 1 and held[0].status == "running"  # that one waits out the lease …
    others = [s for s in sends if s.locked_by != dead_lease]
    assert all(s.status in ("done", "queued") and s.attempts == 1 for s in others), sends  # … the rest ran now
    sent = live_sandbox.ledger()["by_patient_control_number"]
    counts = [sent.get(f"DEAD{n:03d}", 0) for n in range(CLAIMS)]
    assert max(counts) == 1 and counts.count(1) >= [s.status for s in others].count("done")  # each at the payer once
    engine.dispose()
