"""The store of every tenant: one engine, the registry, the observers and guards plugged in,
and its upkeep (tenants, planner statistics)."""
from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.audit import system_audit
from app.db import Tenant, dialect_insert, is_postgres, write_connection
from app.fhir.paging import PageTokens
from app.fhir.registry import Registry
from app.fhir.store.async_pg import AsyncPostgres
from app.fhir.store.rows import RowReader
from app.fhir.store.tenant import TenantStore
from app.fhir.store.types import (
    AccessOf, AuditRows, Clock, Guard, Indexer, Observer, T, Version, everything, lock_key, utcnow,
)
from app.outbox import QueuedJob

if TYPE_CHECKING:
    from app.fhir.store.unit import Unit

TENANT = Tenant.__table__
STATISTICS_LOCK = lock_key("refresh-statistics")  # one process analyzes at a time


class Store:
    def __init__(self, engine: Engine, registry: Registry, *, base_url: str, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.postgres = is_postgres(engine)
        # PostgreSQL's reads by id and API creates, awaited in the event loop (see async_pg).
        self.async_pg = AsyncPostgres(engine.url) if self.postgres else None
        self.rows = RowReader(engine, self.async_pg)
        self.pages = PageTokens.for_engine(engine)  # signed _page links (app.fhir.paging)
        self.registry = registry
        self.base_url = base_url
        self.clock = clock
        self.observers: list[Observer] = []
        self.guards: dict[str, Guard] = {}
        self.indexers: dict[str, Indexer] = {}  # computed number index values, per resource type
        # SQLite has one writer at a time: the API's writes run one by one on a thread of their
        # own. Forty request threads queueing on the write lock instead hand it and the
        # interpreter lock back and forth: 485 creates/s (p99 130 ms) against 688/s (p99 61 ms).
        self._writer = None if self.postgres else ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    async def run_write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking write (``fn(*args, **kwargs)``) off the event loop: on PostgreSQL in
        the thread pool, on SQLite on the writer thread."""
        if self._writer is None:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        context = contextvars.copy_context()  # the request's context (its id in the logs) goes along
        return await asyncio.get_running_loop().run_in_executor(self._writer, partial(context.run, fn, *args, **kwargs))

    def jobs_for(self, unit: "Unit | None", new: Version, previous: Version | None) -> list[QueuedJob]:
        """What the observers queue for a write (see ``Observer``)."""
        return [job for observer in self.observers for job in observer(unit, new, previous)]

    async def aclose(self) -> None:
        """Close the running event loop's asyncpg connections (at server shutdown)."""
        if self.async_pg is not None:
            await self.async_pg.close()

    def for_tenant(self, tenant_id: str, access: AccessOf = everything, audit: AuditRows | None = None,
                   *, actor: str = "therabridge") -> "TenantStore":
        """The tenant's view; ``access`` adds compartment and scope filters to every statement and
        ``audit`` records each write in the transaction that makes it. Without ``audit`` (writes
        no client asked for) the writes are audited with ``actor``, the component, as agent."""
        return TenantStore(self, tenant_id, access,
                           audit or system_audit(tenant_id, actor, self.registry, self.base_url))

    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        # Workers and servers starting together all ensure the default tenant: one inserts it.
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(dialect_insert(conn, TENANT).values(id=tenant_id, name=name or tenant_id,
                                                             created_at=self.clock()).on_conflict_do_nothing())

    def analyze(self, *, never_analyzed_only: bool = False) -> list[str]:
        """Refresh PostgreSQL's planner statistics (after a bulk load; at start for tables that
        have none). Without statistics the planner may answer a read by id from the
        (tenant, type, last_updated) index, filtering every resource of the type: a 1 ms read
        instead of 0.05 ms. Returns warnings for the operator (autovacuum off)."""
        if not self.postgres:
            return []
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if never_analyzed_only:
                tables = [r[0] for r in conn.exec_driver_sql(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                    "AND last_analyze IS NULL AND last_autoanalyze IS NULL").all()]
                for table in tables:
                    conn.exec_driver_sql(f'ANALYZE "{table}"')
            else:
                conn.exec_driver_sql("ANALYZE")
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        if autovacuum != "on":
            return ["warning: PostgreSQL autovacuum is off; planner statistics go stale as data grows "
                    "(reads by id slow down 20x): turn it on, or run ANALYZE regularly"]
        return []

    def refresh_statistics(self) -> list[str]:
        """Stand in for autovacuum's analyze when it is off: ANALYZE the tables that changed by
        more than autovacuum would let pass (50 rows + 10 % of the table) since their last
        statistics. Tables that grow from empty while the server runs otherwise keep the
        statistics of an empty table, and a search with several values (``identifier=a,b,c``)
        turns into a scan per resource. One process at a time (an advisory lock); a no-op on
        SQLite and when autovacuum is on. Returns the tables analyzed."""
        if not self.postgres:
            return []
        done: list[str] = []
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if conn.exec_driver_sql("SHOW autovacuum").scalar() == "on":
                return []
            if not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%d)" % STATISTICS_LOCK).scalar():
                return []
            try:
                stale = [r[0] for r in conn.exec_driver_sql(
                    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.schemaname = current_schema() "
                    "AND s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0)").all()]
                for table in stale:
                    conn.exec_driver_sql(f'ANALYZE "{table}"')
                    done.append(table)
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(%d)" % STATISTICS_LOCK)
        return done

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
