"""Durable outbox: jobs written in the same transaction as the change that causes them.

A worker claims due jobs (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers
share one database; SQLite's write lock serializes the claim instead), runs the handler for the
job's kind, and records the result. A failed run is retried with exponential backoff and
jitter; after ``max_attempts`` the job is dead and a ``Task`` asks a person to look. A claimed
job carries a lease: if its worker dies, the job becomes due again when the lease runs out.
Handlers must be idempotent (the same job may run twice after a crash).

A worker leases only what it runs next: one job, or, for a kind with a batch handler, the due
jobs of that kind and tenant among the next ``batch`` in line, which run together. Everything
else stays queued for any worker, so a worker that dies holds up what it was running and
nothing more (leasing a whole round of 50 up front kept 49 jobs waiting out the dead worker's
lease). Jobs whose lease ran out are taken over before new ones. Each lease has its own token
(``locked_by``), and a run ends (done, failed, deferred) only where the job still carries that
token, in the same transaction as the handler's writes: a worker that outlived its lease and was
taken over records nothing, and its transactional work rolls back. Payer calls end well inside the
lease (``app.payers.calls``), so a lease is not extended while a job runs: no heartbeat that a
stuck-but-alive worker would keep beating.

Three kinds of handler:
- ``register_handler``: runs inside the job's own transaction, which also marks it done.
- ``register_batch_handler``: all due jobs of that kind and tenant in one claim run together in
  one transaction (forming payer batches; generating many claims per commit). If the kind also
  has a single-job handler, a batch that fails is rerun job by job, so one bad job fails alone.
- ``register_handler(..., transaction=False)``: the handler opens its own transactions. For work
  that talks to a payer: no database transaction (nor SQLite's write lock) is held during the
  network call, so the handler commits what must be fixed before sending, sends, then records.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.db import is_postgres, write_connection
from app.fhir.store import Store, TenantStore, Unit
from app.fhir.tasks import task_input, work_item
from app.log_safety import describe, describe_kind, where
from app.outbox import J, QueuedJob, insert_jobs

log = logging.getLogger("therabridge.jobs")
# Seconds between a worker's checks for stale planner statistics (``Store.refresh_statistics``,
# which does anything only on PostgreSQL with autovacuum off).
STATISTICS_INTERVAL = 15.0




class Deferred(Exception):
    """Raised by a handler for "not now, and not a failure": the job waits until ``until`` and
    the attempt is not counted (a payer whose circuit is open must not dead-letter its jobs)."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class LeaseLost(Exception):
    """The job's lease is no longer this run's (it ran out and another worker took the job): the
    run records nothing, and the new owner finishes the job."""


Handler = Callable[[Unit, dict[str, Any]], None]
OwnHandler = Callable[[TenantStore, dict[str, Any]], None]
BatchHandler = Callable[[Unit, list[dict[str, Any]]], None]
HANDLERS: dict[str, Handler] = {}
OWN_TRANSACTION: dict[str, OwnHandler] = {}
BATCH_HANDLERS: dict[str, BatchHandler] = {}
#: Kinds that finish work already in flight (a built claim on its way to the payer): a worker
#: takes their due jobs before any other due job. Under a backlog of visits to bill, sending
#: the claims already built first keeps time to the payer short and work in progress small;
#: in due order they waited behind every visit that finished before them.
EXPEDITED: set[str] = set()
#: Kinds that give way (posting a payer's answers): a worker takes their due jobs only when no
#: other job is due, or once they have waited ``PATIENCE``, so they are never starved. An
#: answer posted a minute later changes nothing for anyone; a visit whose claim waits behind
#: the answers does (under a burst of visits with the payer answering, posting took two fifths
#: of the workers' time and the claims queued behind it).
BACKGROUND: set[str] = set()
PATIENCE = timedelta(seconds=60)


def give_way(kind: str) -> None:
    """Take due jobs of ``kind`` after every other due job, unless they waited ``PATIENCE`` (``BACKGROUND``)."""
    BACKGROUND.add(kind)


def register_handler(kind: str, handler: Any, *, transaction: bool = True) -> None:
    """``handler(unit, payload)``; with ``transaction=False``, ``handler(tenant_store, payload)``."""
    HANDLERS.pop(kind, None)
    OWN_TRANSACTION.pop(kind, None)
    (HANDLERS if transaction else OWN_TRANSACTION)[kind] = handler


def register_batch_handler(kind: str, handler: BatchHandler) -> None:
    """``handler(unit, payloads)`` for every due job of ``kind`` (per tenant) claimed together."""
    BATCH_HANDLERS[kind] = handler


def expedite(kind: str) -> None:
    """Take due jobs of ``kind`` before other due jobs (``EXPEDITED``)."""
    EXPEDITED.add(kind)


def enqueue(unit: Unit, kind: str, payload: dict[str, Any], *, dedupe_key: str,
            run_after: datetime | None = None) -> bool:
    """Record a job inside ``unit``'s transaction, due now or at ``run_after``; False when one
    with the same key exists (its due time is left as it was)."""
    return insert_jobs(unit.conn, unit.tenant_id, unit.now, [QueuedJob(kind, payload, dedupe_key, run_after)]) == 1


def schedule_daily(unit: Unit, kind: str, day: date | None = None) -> bool:
    """Queue the daily job ``kind`` for the start of ``day`` (UTC; tomorrow by default), once per
    tenant and day: the daily sweeps re-queue themselves this way while they have work.

    Asked again in the same transaction (every claim of a batch asks), it answers from the
    unit's memo: the job is in the queue already, so no statement is sent for it."""
    day = day or unit.now.date() + timedelta(days=1)
    key = f"{kind}@{day.isoformat()}"
    memo: dict[Any, Any] = getattr(unit, "memo", {})
    if ("daily-job", key) in memo:
        return False
    queued = enqueue(unit, kind, {"day": day.isoformat()}, dedupe_key=key,
                     run_after=datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    memo[("daily-job", key)] = True
    return queued


@dataclass
class Claimed:
    pk: int
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    lease: str  # the token in ``locked_by`` while this run holds the job


@lru_cache(maxsize=8)
def _claim_statements(postgres: bool, expedited: tuple[str, ...], background: tuple[str, ...]) -> list[sa.Select]:
    """``Worker.claim``'s queries in the order they are asked (``now``, ``patient`` and ``n``
    bound at each claim), built once: a worker claims many times a second, and building them
    anew each time cost more than running them. Jobs whose worker's lease ran out, then due jobs
    of the expedited kinds, then due jobs (those of kinds that give way only once they waited
    ``PATIENCE``), then due jobs of the kinds that give way. Range scans of ix_job_due
    (status, run_after) and ix_job_kind_due (status, kind, run_after), rather than one OR,
    which the planner answers with a scan of every job ever run once the table is large."""
    columns = (J.c.pk, J.c.tenant_id, J.c.kind, J.c.payload, J.c.attempts)
    now, n = sa.bindparam("now"), sa.bindparam("n")
    queries = [sa.select(*columns).where(J.c.status == "running", J.c.locked_until < now)]
    if expedited:
        queries.append(sa.select(*columns).where(J.c.status == "queued", J.c.kind.in_(expedited), J.c.run_after <= now))
    waited = sa.or_(J.c.kind.not_in(background), J.c.run_after <= sa.bindparam("patient")) if background else sa.true()
    queries.append(sa.select(*columns).where(J.c.status == "queued", J.c.run_after <= now, waited))
    if background:
        queries.append(sa.select(*columns).where(J.c.status == "queued", J.c.kind.in_(background),
                                                 J.c.run_after <= now))
    queries = [q.order_by(J.c.run_after, J.c.pk).limit(n) for q in queries]
    return [q.with_for_update(skip_locked=True) for q in queries] if postgres else queries


# The lease of the claimed jobs (``pks``), one statement.
_LEASE = J.update().where(J.c.pk.in_(sa.bindparam("pks", expanding=True))).values(
    status="running", locked_by=sa.bindparam("lease"), locked_until=sa.bindparam("until"),
    updated_at=sa.bindparam("now"), attempts=J.c.attempts + 1)


class Worker:
    def __init__(self, store: Store, *, batch: int = 10, lease_seconds: int = 120, max_attempts: int = 6,
                 base_delay: float = 2.0, max_delay: float = 900.0, name: str | None = None) -> None:
        self.store = store
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._stop = threading.Event()

    def claim(self) -> list[Claimed]:
        """Lease the jobs to run now: the first in line (a job whose lease ran out, else the
        earliest due of an expedited kind, else the earliest due, where the kinds that give way
        come last until they waited ``PATIENCE``) and, when its kind has a batch
        handler, the jobs of its kind and tenant among the next ``batch`` in line. The others
        stay queued for any worker."""
        now = self.store.clock()
        expired, *waiting = _claim_statements(is_postgres(self.store.engine), tuple(sorted(EXPEDITED)),
                                              tuple(sorted(BACKGROUND)))
        params = {"now": now, "n": self.batch, "patient": now - PATIENCE}
        lease = f"{self.name[:100]}/{uuid.uuid4().hex[:16]}"
        with write_connection(self.store.engine) as conn, conn.begin():
            in_line = conn.execute(expired, params).all()
            for query in waiting:  # the first of these with a due job is the line
                if ahead := conn.execute(query, params).all():
                    in_line += ahead
                    break
            if not in_line:
                return []
            head = in_line[0]
            rows = [r for r in in_line if r.kind == head.kind and r.tenant_id == head.tenant_id][:self.batch] \
                if head.kind in BATCH_HANDLERS else [head]
            conn.execute(_LEASE, {"pks": [r.pk for r in rows], "lease": lease, "until": now + self.lease, "now": now})
        return [Claimed(r.pk, r.tenant_id, r.kind, orjson.loads(r.payload), r.attempts + 1, lease) for r in rows]

    def run_once(self) -> int:
        """Claim and run the next job (or batch of jobs of one kind); returns how many ran."""
        jobs = self.claim()
        if not jobs:
            return 0
        if jobs[0].kind in BATCH_HANDLERS:
            self._run_batch(BATCH_HANDLERS[jobs[0].kind], jobs)
        else:
            for job in jobs:
                self._run(job)
        return len(jobs)

    def _run(self, job: Claimed) -> None:
        try:
            ts = self.store.for_tenant(job.tenant_id, actor=f"worker/{job.kind}")
            own = OWN_TRANSACTION.get(job.kind)
            if own is not None:
                own(ts, job.payload)
                with write_connection(self.store.engine) as conn, conn.begin():
                    self._finish(conn, job, "done", None)
                return
            handler = HANDLERS.get(job.kind)
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            with ts.unit() as unit:
                handler(unit, job.payload)
                self._finish(unit.conn, job, "done", None)  # LeaseLost rolls the handler's writes back
        except LeaseLost:
            self._lost(job)
        except Deferred as deferred:
            self._defer(job, deferred)
        except Exception as exc:  # recorded on the job; never lost
            self._log_failure(job, exc)

    def _owned(self, job: Claimed) -> Any:
        """The job's row while this run's lease holds it (the condition every ending checks)."""
        return sa.and_(J.c.pk == job.pk, J.c.status == "running", J.c.locked_by == job.lease)

    def _lost(self, job: Claimed) -> None:
        log.warning("job %s (%s): its lease ran out and another worker took it over; this run records nothing",
                    job.pk, job.kind)

    def _defer(self, job: Claimed, deferred: Deferred) -> None:
        spread = timedelta(seconds=random.uniform(0, 1.0))  # deferred jobs do not return in lockstep
        with write_connection(self.store.engine) as conn, conn.begin():
            moved = conn.execute(J.update().where(self._owned(job)).values(
                status="queued", attempts=J.c.attempts - 1, last_error=deferred.reason[:2000], locked_by=None,
                locked_until=None, run_after=deferred.until + spread, updated_at=self.store.clock())).rowcount
        if not moved:
            self._lost(job)

    def _run_batch(self, handler: BatchHandler, jobs: list[Claimed]) -> None:
        try:
            with self.store.for_tenant(jobs[0].tenant_id, actor=f"worker/{jobs[0].kind}").unit() as unit:
                handler(unit, [job.payload for job in jobs])
                done = unit.conn.execute(J.update().where(
                    J.c.pk.in_([job.pk for job in jobs]), J.c.status == "running", J.c.locked_by == jobs[0].lease,
                ).values(status="done", last_error=None, locked_by=None, locked_until=None,
                         updated_at=unit.now)).rowcount
                if done != len(jobs):
                    raise LeaseLost()  # the whole batch's writes roll back
        except LeaseLost:
            self._release(jobs)
        except Exception as exc:
            if jobs[0].kind in HANDLERS or jobs[0].kind in OWN_TRANSACTION:
                for job in jobs:  # one job spoiled the batch: run each alone, so only it fails
                    self._run(job)
                return
            for job in jobs:  # each job keeps its own retry schedule
                self._log_failure(job, exc)

    def _release(self, jobs: list[Claimed]) -> None:
        """Give back, unrun and without spending an attempt, the jobs of a batch whose lease
        still holds after another worker took over some of them; they run again at once."""
        now = self.store.clock()
        with write_connection(self.store.engine) as conn, conn.begin():
            kept = conn.execute(J.update().where(
                J.c.pk.in_([job.pk for job in jobs]), J.c.status == "running", J.c.locked_by == jobs[0].lease,
            ).values(status="queued", attempts=J.c.attempts - 1, locked_by=None, locked_until=None, run_after=now,
                     updated_at=now)).rowcount
        log.warning("batch of %s %s jobs: %s taken over by another worker, %s given back",
                    len(jobs), jobs[0].kind, len(jobs) - kept, kept)

    def _log_failure(self, job: Claimed, exc: Exception) -> None:
        summary = describe(exc)[:2000]  # kept on the job row and in its Task: a database error's text holds PHI
        log.warning("job %s (%s) attempt %s failed: %s", job.pk, job.kind, job.attempts, describe_kind(exc))
        try:
            self._failed(job, summary, where(exc))
        except LeaseLost:
            self._lost(job)

    def _finish(self, conn: Connection, job: Claimed, status: str, error: str | None) -> None:
        """End the run (``done``/``dead``) in ``conn``'s transaction; ``LeaseLost`` when the job is
        no longer this run's."""
        now = self.store.clock()
        ended = conn.execute(J.update().where(self._owned(job)).values(
            status=status, last_error=error, locked_by=None, locked_until=None, updated_at=now)).rowcount
        if not ended:
            raise LeaseLost()

    def _failed(self, job: Claimed, summary: str, detail: str) -> None:
        ts = self.store.for_tenant(job.tenant_id, actor="worker")
        with ts.unit() as unit:
            if job.attempts >= self.max_attempts:
                self._finish(unit.conn, job, "dead", summary)
                unit.create(dead_letter_task(job, summary, unit.now))
                return
            delay = min(self.max_delay, self.base_delay * 2 ** (job.attempts - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: failed jobs do not retry in lockstep
            retried = unit.conn.execute(J.update().where(self._owned(job)).values(
                status="queued", last_error=summary, locked_by=None, locked_until=None,
                run_after=unit.now + timedelta(seconds=delay), updated_at=unit.now)).rowcount
            if not retried:
                raise LeaseLost()

    def run_forever(self, poll_seconds: float = 1.0) -> None:
        next_statistics = time.monotonic() + STATISTICS_INTERVAL
        while not self._stop.is_set():
            try:
                ran = self.run_once()
                if time.monotonic() >= next_statistics:
                    next_statistics = time.monotonic() + STATISTICS_INTERVAL
                    self.store.refresh_statistics()
            except Exception as exc:
                log.error("worker loop error: %s at %s", describe_kind(exc), where(exc))
                ran = 0
            if not ran:
                self._stop.wait(poll_seconds)

    def stop(self) -> None:
        self._stop.set()


def dead_letter_task(job: Claimed, error: str, now: datetime) -> dict[str, Any]:
    return work_item("job-failed", "Background job failed",
                     f"The {job.kind} job failed {job.attempts} times and was stopped: {error}", now,
                     priority="urgent", business_status="dead-letter",
                     inputs=[task_input("job", valueString=str(job.pk)), task_input("kind", valueString=job.kind),
                             task_input("payload", valueString=orjson.dumps(job.payload).decode())])


def retry_dead_job(store: Store, job_pk: int) -> None:
    """Put a dead job back in the queue (what a person does after fixing the cause)."""
    with write_connection(store.engine) as conn, conn.begin():
        conn.execute(J.update().where(J.c.pk == job_pk, J.c.status == "dead").values(
            status="queued", attempts=0, run_after=store.clock(), updated_at=store.clock()))
