"""Claim generation through the worker's batch path, counted (``python -m bench.generation``; not a test).

What ``bench.e2e`` measures in worker processes, here in one process so that the work can be
counted, not only timed (the machine is shared, wall-clock time and even CPU time move with the
neighbours): finished visits of Medicare patients (``bench.e2e``'s set-up: the demo's patient,
Coverage, plan of care and fee schedule copied per patient, two timed Procedures per visit) are
generated in batches of ``--batch`` exactly as a worker runs a leased batch of ``generate-claim``
jobs (one transaction per batch, the claims auto-submitted into the queue). Printed per claim:
the SQL statements sent (a ``before_cursor_execute`` counter), the rows they returned, and the
CPU time of this process (with SQLite the database's work is in it; with PostgreSQL it is not,
and the statement count stands for it). ``--profile`` adds cProfile's heaviest functions (a
second run of the same size, since the profiler slows what it watches).

    python -m bench.generation [--database-url sqlite:////tmp/gen.db] [--visits 400] [--patients 100]
                               [--batch 50] [--rounds 1] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from app import heap
from app.jobs import BATCH_HANDLERS, Claimed, J, Worker
from bench.e2e import PG_BENCH, setup, write_visit

KIND = "generate-claim"


class StatementCounter:
    """Statements sent and rows fetched on an engine, by the first word of the statement."""

    def __init__(self, engine: sa.Engine) -> None:
        self.by_verb: Counter[str] = Counter()
        self.rows = 0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.by_verb[statement.lstrip().split(None, 1)[0].upper()] += 1

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if cursor.description is not None and cursor.rowcount and cursor.rowcount > 0:
            self.rows += cursor.rowcount

    def reset(self) -> None:
        self.by_verb.clear()
        self.rows = 0

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())


def _lease(store: Any, limit: int) -> list[Claimed]:
    """Lease the next ``limit`` queued generate-claim jobs, as ``Worker.claim`` does."""
    lease = f"bench/{uuid.uuid4().hex[:16]}"
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(J.c.pk, J.c.tenant_id, J.c.payload, J.c.attempts).where(
            J.c.kind == KIND, J.c.status == "queued").order_by(J.c.pk).limit(limit)).all()
        if rows:
            conn.execute(J.update().where(J.c.pk.in_([r.pk for r in rows])).values(
                status="running", locked_by=lease, locked_until=store.clock(), attempts=J.c.attempts + 1))
    return [Claimed(r.pk, r.tenant_id, KIND, orjson.loads(r.payload), r.attempts + 1, lease) for r in rows]


def generate_all(store: Any, batch: int, profiler: cProfile.Profile | None = None, limit: int | None = None) -> int:
    """Run the queued generate-claim jobs (``limit`` of them, default all), ``batch`` at a time;
    returns how many ran."""
    worker, handler, ran = Worker(store, batch=batch), BATCH_HANDLERS[KIND], 0
    while (limit is None or ran < limit) and (jobs := _lease(store, batch)):
        if profiler is not None:
            profiler.enable()
        worker._run_batch(handler, jobs)
        if profiler is not None:
            profiler.disable()
        ran += len(jobs)
    return ran


def run_due(store: Any, batch: int) -> dict[str, Any]:
    """Then every job due, as the workers would run them after the claims (the queue's batching
    and sending to the payer's mailbox): by kind, how many ran and their CPU milliseconds."""
    worker, ran, cpu = Worker(store, batch=batch), Counter[str](), Counter[str]()
    while jobs := worker.claim():
        at = time.process_time()
        ran[jobs[0].kind] += len(jobs)
        if jobs[0].kind in BATCH_HANDLERS:
            worker._run_batch(BATCH_HANDLERS[jobs[0].kind], jobs)
        else:
            for job in jobs:
                worker._run(job)
        cpu[jobs[0].kind] += time.process_time() - at
    return {kind: {"jobs": n, "cpu_ms": round(1000 * cpu[kind], 1)} for kind, n in sorted(ran.items())}


def _prepared(url: str, visits: int, patients: int) -> Any:
    var = Path(tempfile.mkdtemp(prefix="therabridge-gen-"))
    _, store, _ = setup(url, var, patients)
    for n in range(visits):
        write_visit(store, n, patients)
    store.analyze()
    return store


def _claims(store: Any) -> Counter[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT content FROM resource WHERE type = 'Claim' AND content IS NOT NULL").all()
    return Counter((r[0] if isinstance(r[0], dict) else orjson.loads(r[0])).get("status", "?") for r in rows)


def run(url: str, visits: int, patients: int, batch: int, rounds: int = 1) -> dict[str, Any]:
    store = _prepared(url, visits + batch, patients)
    counter = StatementCounter(store.engine)
    generate_all(store, batch, limit=batch)  # warm-up (imports, data tables, plans): not counted
    heap.settle()  # as ``therabridge worker`` does once it has loaded what it keeps
    counter.reset()
    cpu, wall, ran, least = time.process_time(), time.perf_counter(), 0, float("inf")
    per_round = -(-visits // rounds)
    for _ in range(rounds):  # the least CPU of a round is the figure least disturbed by neighbours
        at = time.process_time()
        done = generate_all(store, batch, limit=per_round)
        if done:
            least = min(least, (time.process_time() - at) / done)
        ran += done
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    made = (counter.total, dict(counter.by_verb), counter.rows)
    counter.reset()
    cpu_rest = time.process_time()
    rest = run_due(store, batch)
    cpu_rest = time.process_time() - cpu_rest
    row = {"database": "postgresql" if store.postgres else "sqlite", "visits": ran, "batch": batch,
           "statements_per_claim": round(made[0] / ran, 2),
           "by_verb_per_claim": {k: round(v / ran, 2) for k, v in sorted(made[1].items())},
           "rows_fetched_per_claim": round(made[2] / ran, 2),
           "cpu_ms_per_claim": round(1000 * cpu / ran, 2), "wall_ms_per_claim": round(1000 * wall / ran, 2),
           "least_round_cpu_ms_per_claim": round(1000 * least, 2),
           "claims_by_status": dict(_claims(store)),
           "then_other_jobs": {"jobs": rest, "statements_per_claim": round(counter.total / ran, 2),
                               "cpu_ms_per_claim": round(1000 * cpu_rest / ran, 2)}}
    store.engine.dispose()
    return row


def profile(url: str, visits: int, patients: int, batch: int, top: int) -> str:
    store = _prepared(url, visits + batch, patients)
    generate_all(store, batch, limit=batch)
    prof = cProfile.Profile()
    generate_all(store, batch, prof)
    store.engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=PG_BENCH)
    parser.add_argument("--visits", type=int, default=400)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50, help="jobs per leased batch (a worker's --batch)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="split the visits into rounds and also report the least CPU per claim of a round")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's heaviest functions")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.database_url, args.visits, args.patients, args.batch, args.rounds)), flush=True)
    if args.profile:
        print(profile(args.database_url, args.visits, args.patients, args.batch, args.top))


if __name__ == "__main__":
    main()
