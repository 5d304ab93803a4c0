"""Every call to a payer goes through here: the connection's adapter is built for the call, the
call is bounded by a total deadline, the connection's circuit breaker is kept, and X12 control
numbers are committed before anything is sent. The breaker and the control numbers commit on
their own connections, so no database transaction may be open around a call; that is why every
job handler that talks to a payer is registered with ``transaction=False``.

The circuit breaker (one per payer connection and operation, in the database so every worker
sees it). Operations are kept apart because a clearinghouse's claims API can be down while its
report mailbox answers, and a successful report poll must not let a day's claims hammer a
failing endpoint. After ``circuit_failures`` consecutive transport failures (timeouts, 5xx, dropped connections, SFTP
errors) the circuit opens for ``circuit_cooldown`` seconds. When that runs out, one caller is let
through as a probe, claimed with a conditional UPDATE so that two workers never probe at once.
A failed probe opens the circuit again for twice as long, up to ``circuit_cooldown_max``, and
does not count against the probing job's attempts (the outage is the payer's, not the job's);
any answer from the payer, a rejection included, closes it. While it is open nobody calls the payer:
jobs wait without spending attempts (``CircuitOpen`` is a ``Deferred``), so an outage does not
dead-letter a day's claims, and real-time eligibility is queued at once instead of timing out.

The deadline (``THERABRIDGE_PAYER_DEADLINE_<OPERATION>``, or the caller's, such as real-time
eligibility's) bounds the whole call, whatever the adapter does inside: HTTP and SFTP timeouts
only bound the wait for the next bytes, so a payer trickling its answer would otherwise hold a
worker (and its job lease) for as long as it likes. A call past its deadline is cancelled and
counts as a transport failure like any other. Every deadline is well under the job lease, so a
job is never taken over by another worker while its payer call is still running.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.db import dialect_insert, write_connection
from app.fhir.store import TenantStore
from app.jobs import Deferred
from app import directory
from app.directory import PayerLink
from app.payers.models import CIRCUITS as C
from app.payers.runtime import run_async, runtime
from app.x12_control import DatabaseControlNumbers
from payer_adapters.contract import PayerAdapter
from payer_adapters.errors import PayerDeadlineExceeded, PayerRejection, TransientPayerError, deadline
from payer_adapters.registry import create_adapter

log = logging.getLogger("therabridge.payers")
R = TypeVar("R")
#: Seconds an adapter gets to close its connections after a call (an SFTP session, say).
CLOSE_SECONDS = 5.0
Operation = Literal["claims", "status", "eligibility", "reports"]


class CircuitOpen(Deferred):
    """The payer's circuit is open: try again at ``until``."""


def _key(link: PayerLink, operation: Operation) -> Any:
    return sa.and_(C.c.connection_pk == link.pk, C.c.operation == operation)


def _admit(ts: TenantStore, link: PayerLink, operation: Operation) -> int:
    """Raise ``CircuitOpen`` unless this call may go to the payer; returns the failures so far."""
    now = ts.store.clock()
    with ts.store.engine.connect() as conn:
        row = conn.execute(sa.select(C.c.failures, C.c.opened_until).where(_key(link, operation))).first()
    if row is None or row.opened_until is None:
        return row.failures if row else 0
    if row.opened_until > now:
        raise CircuitOpen(row.opened_until, f"payer circuit open after {row.failures} transport failures")
    window = now + timedelta(seconds=runtime().settings.circuit_cooldown)
    with write_connection(ts.store.engine) as conn, conn.begin():
        claimed = conn.execute(C.update().where(_key(link, operation), C.c.opened_until <= now)
                               .values(opened_until=window, updated_at=now)).rowcount
    if not claimed:  # another worker is probing right now
        raise CircuitOpen(window, "payer circuit open: another call is probing the payer")
    log.info("payer connection %s %s: probing after %s transport failures", link.pk, operation, row.failures)
    return int(row.failures)


def _closed(ts: TenantStore, link: PayerLink, operation: Operation) -> None:
    with write_connection(ts.store.engine) as conn, conn.begin():
        conn.execute(C.update().where(_key(link, operation)).values(
            failures=0, opened_until=None, last_error=None, updated_at=ts.store.clock()))
    log.info("payer connection %s %s: circuit closed", link.pk, operation)


def _failed(ts: TenantStore, link: PayerLink, operation: Operation, error: TransientPayerError) -> datetime | None:
    """Count the failure; returns until when the circuit is now open, if it is."""
    settings = runtime().settings
    now = ts.store.clock()
    text = f"{type(error).__name__}: {error}"[:300]
    with write_connection(ts.store.engine) as conn, conn.begin():
        upsert = dialect_insert(conn, C).values(connection_pk=link.pk, operation=operation, tenant_id=link.tenant_id, failures=1,
                                          last_error=text, updated_at=now)
        failures = conn.execute(upsert.on_conflict_do_update(
            index_elements=[C.c.connection_pk, C.c.operation],
            set_={"failures": C.c.failures + 1, "last_error": text, "updated_at": now},
        ).returning(C.c.failures)).scalar_one()
        over = failures - settings.circuit_failures
        if over >= 0:
            pause = min(settings.circuit_cooldown_max, settings.circuit_cooldown * 2 ** min(over, 30))
            conn.execute(C.update().where(_key(link, operation))
                         .values(opened_until=now + timedelta(seconds=pause)))
            log.warning("payer connection %s %s: circuit open for %.0f s after %s transport failures",
                        link.pk, operation, pause, failures)
            return now + timedelta(seconds=pause)
    return None


async def call_payer_async(ts: TenantStore, link: PayerLink, operation: Operation,
                           call: Callable[[PayerAdapter], Awaitable[R]], *, seconds: float | None = None) -> R:
    """``call(adapter)`` under the circuit breaker of ``operation`` on the connection, within
    ``seconds`` (default: the operation's deadline setting); see the module docstring."""
    failures = await asyncio.to_thread(_admit, ts, link, operation)
    rt = runtime()
    limit = seconds if seconds is not None else rt.settings.payer_deadline(operation)
    numbers = DatabaseControlNumbers(ts.store.engine, ts.tenant_id)  # committed at once, never reused
    try:
        async with rt.http_factory() as http:
            adapter = create_adapter(link.kind, link.adapter_settings(rt.settings), http=http,
                                     control_numbers=numbers)
            try:
                async with deadline(limit, f"payer {operation} call"):
                    result = await call(adapter)
            finally:
                await _close(adapter)
    except TransientPayerError as err:
        if isinstance(err, PayerDeadlineExceeded):
            log.warning("payer connection %s %s: call cut off at its %g s deadline", link.pk, operation, limit)
        until = await asyncio.to_thread(_failed, ts, link, operation, err)
        if until is not None and failures >= runtime().settings.circuit_failures:
            # a failed probe says the payer is still down, nothing about this job
            raise CircuitOpen(until, f"payer circuit open again: the probe failed ({type(err).__name__})") from err
        raise
    except PayerRejection:
        if failures:
            await asyncio.to_thread(_closed, ts, link, operation)
        raise
    if failures:
        await asyncio.to_thread(_closed, ts, link, operation)
    return result


async def _close(adapter: PayerAdapter) -> None:
    """Close the adapter's connections, within ``CLOSE_SECONDS`` (a hung payer cannot hold it)."""
    close = getattr(adapter, "close", None)
    if close is None:
        return
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await close()
    except TimeoutError:
        log.warning("payer adapter %s did not close within %s s", adapter.kind, CLOSE_SECONDS)


def call_payer(ts: TenantStore, link: PayerLink, operation: Operation,
               call: Callable[[PayerAdapter], Awaitable[R]]) -> R:
    """``call_payer_async`` from a synchronous job handler."""
    return run_async(lambda: call_payer_async(ts, link, operation, call))


def listing(engine: Engine, tenant: str | None, now: datetime) -> list[dict[str, Any]]:
    """The tenant's payer connections as an operator sees them. ``circuits`` names each
    operation that is not healthy: ``closed`` with failures counting up, ``open`` until a time,
    or ``half-open`` (the next call is a probe); an empty object means all is well."""
    links = directory.list_connections(engine, tenant)
    circuits: dict[int, dict[str, Any]] = {link.pk: {} for link in links}
    if links:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(C).where(C.c.connection_pk.in_(list(circuits)),
                                                   sa.or_(C.c.failures > 0, C.c.opened_until.is_not(None)))
                                .order_by(C.c.operation)).all()
        for row in rows:
            opened = row.opened_until
            circuit = {"state": "closed" if opened is None else "open" if opened > now else "half-open",
                       "failures": row.failures, "lastError": row.last_error}
            if opened is not None:
                circuit["openUntil"] = opened.isoformat()
            circuits[row.connection_pk][row.operation] = circuit
    return [{"tenant": link.tenant_id, **link.public(), "circuits": circuits[link.pk]} for link in links]
