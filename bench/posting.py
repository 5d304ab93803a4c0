"""Posting payer answers: what each claim's 999, 277CA and 835 cost (``python -m bench.posting``; not a test).

``bench.e2e`` times the whole pipeline on shared cores, where posting the answers and making
the claims compete and one run differs from the next by up to a fifth. This bench isolates
the answers' side with exact CPU counts. Set-up as ``bench.e2e`` (PostgreSQL, its tenant,
Medicare with auto-submit, ``--secondary-share`` of the patients with an Acme supplement):
``--claims`` finished visits are made into claims and sent by a ``Worker`` in this process;
the sandbox payer answers the mailbox once (a 999, a 277CA and an 835 per file). Then,
measured: the Worker collects and posts every answer, and makes and sends the secondaries
the 835s call for. Figures: this process's CPU and PostgreSQL's (every server process of the
machine, from /proc), each per primary claim, and the wall time; ``--rounds`` repeats the
whole run (the figures of each round are printed).

    python -m bench.posting [--claims 1000] [--secondary-share 0.2] [--rounds 3]
                            [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_e2e]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import heap
from app.fhir.store import Store
from app.jobs import Worker
from app.payers.models import INBOUND as M, SUBMISSIONS as S
from bench import e2e


def postgres_cpu() -> float:
    """User + system CPU seconds of every PostgreSQL server process now running (Linux)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            total += e2e.cpu_seconds(int(pid))
    return total


def running_workers() -> list[int]:
    """Pids of ``therabridge worker`` processes on this machine: they would take the bench's jobs
    (a ``bench.e2e`` stopped midway leaves its workers running)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"app.cli worker" in cmdline or b"therabridge worker" in cmdline:
            found.append(int(pid))
    return found


def _count(store: Store, stmt: sa.Select) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def drain(worker: Worker, done: Any, timeout: float = 600) -> None:
    """Run due jobs until ``done()`` holds and nothing is due."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if worker.run_once() == 0:
            if done():
                return
            time.sleep(0.02)
    raise TimeoutError("the worker did not finish in time")


def one_round(url: str, claims: int, patients: int, share: float) -> dict[str, Any]:
    from payer_adapters.sandbox import Engine, Mailbox
    from payer_adapters.sandbox.config import SandboxConfig

    var = Path(tempfile.mkdtemp(prefix="therabridge-posting-"))
    settings, store, payers = e2e.setup(url, var, patients, share)
    for n in range(claims):
        e2e.write_visit(store, n, patients)
    store.analyze()
    worker = Worker(store, batch=e2e.WORKER_BATCH, base_delay=0.01, max_delay=0.05)
    heap.settle()  # as ``therabridge worker`` does once it has loaded what it keeps
    submitted = sa.select(sa.func.count()).select_from(S).where(S.c.status == "submitted",
                                                                S.c.connection_pk == payers.primary)
    drain(worker, lambda: _count(store, submitted) >= claims)
    engine = Engine(SandboxConfig(data=e2e.payer_data()))
    Mailbox(payers.mailbox, engine, use_pyx12=False).process(datetime.now(timezone.utc))
    answers = len(list((payers.mailbox / "outbox").glob("*.x12")))
    posted = sa.select(sa.func.count()).select_from(M).where(M.c.status.in_(("posted", "duplicate")))
    secondaries = sa.select(sa.func.count()).select_from(S).where(S.c.status == "submitted",
                                                                  S.c.connection_pk == payers.supplement)
    expected = e2e.expected_secondaries(claims, patients, share)
    cpu, pg, wall = time.process_time(), postgres_cpu(), time.perf_counter()
    drain(worker, lambda: _count(store, posted) >= answers and _count(store, secondaries) >= expected)
    cpu, pg, wall = time.process_time() - cpu, postgres_cpu() - pg, time.perf_counter() - wall
    sent = _count(store, secondaries)
    store.engine.dispose()
    return {"claims": claims, "answer_files": answers, "secondaries_sent": sent,
            "wall_s": round(wall, 2), "worker_cpu_ms_per_claim": round(1000 * cpu / claims, 2),
            "postgres_cpu_ms_per_claim": round(1000 * pg / claims, 2),
            "total_cpu_ms_per_claim": round(1000 * (cpu + pg) / claims, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=e2e.PG_BENCH)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--secondary-share", type=float, default=e2e.SECONDARY_SHARE)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 0 < args.secondary_share <= 1:
        parser.error("--secondary-share is a share above 0, up to 1 (the bench measures the secondaries too)")
    if others := running_workers():
        parser.exit(2, f"therabridge workers are running (pids {', '.join(map(str, others))}); they would take "
                       "the bench's jobs: stop them first\n")
    rows = []
    for _ in range(args.rounds):
        rows.append(one_round(args.database_url, args.claims, args.patients, args.secondary_share))
        print(json.dumps(rows[-1]), flush=True)
    summary = {key: statistics.median(r[key] for r in rows)
               for key in ("worker_cpu_ms_per_claim", "postgres_cpu_ms_per_claim", "total_cpu_ms_per_claim")}
    print(json.dumps({"median_of_rounds": summary}), flush=True)
    out = e2e.ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "posting.json").write_text(json.dumps({"rounds": rows, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
