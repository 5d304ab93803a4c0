"""The generic FHIR resource store (design.md §2).

``Store.for_tenant(tenant_id)`` gives a :class:`TenantStore`; every statement it issues is
filtered by that tenant, so the routes never handle tenancy themselves. Writes go through a
:class:`Unit` (one database transaction): the current row, the history row and the search
index rows of a write commit together, and a transaction Bundle runs all its entries in one Unit.

Concurrency rules, enforced by the database rather than by check-then-write:
- updates are compare-and-set on ``version_id`` (two updates with the same ``If-Match``: one
  wins, the other gets 412; versions never repeat thanks to the history unique key);
- conditional create/update take a lock on their query (``pg_advisory_xact_lock`` on
  PostgreSQL; SQLite write transactions are already serialized by ``BEGIN IMMEDIATE``).
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from functools import lru_cache, partial
from datetime import datetime
from typing import Any, Callable, Iterator, TypeVar

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.audit import system_audit, write_rows
from app.db import ResourceHistoryRow, Tenant, dialect_insert, is_postgres, write_connection
from app.fhir.access import EVERYTHING, Access, check_write, conditions
from app.fhir.dates import UTC, instant
from app.fhir.errors import FhirError, Gone, NotFound, PreconditionFailed
from app.fhir import exact_json, pg_writes
from app.fhir.async_pg import AsyncPostgres
from app.fhir.extract import IndexValues, extract
from app.fhir.interactions import check_offered
from app.fhir.paging import PageTokens, Position, history_binding, search_binding
from app.fhir.registry import Registry
from app.fhir.search_params import SearchQuery, parse_search
from app.fhir.search_sql import (
    DATE, REF, R, STRING, TOKEN, from_cursor_value, keyset_condition, query_conditions,
    sort_expression, to_cursor_value,
)
from app.outbox import QueuedJob, insert_jobs

H = ResourceHistoryRow.__table__
TENANT = Tenant.__table__

Clock = Callable[[], datetime]
AccessOf = Callable[[str, str], Access]  # (interaction c/r/u/d/s, resource type) -> Access
# [(create | update | delete, version)] -> the audit rows (app.audit's row dicts) of those writes
AuditRows = Callable[[list[tuple[str, "Version"]]], list[dict[str, Any]]]
# A write observer: the jobs a create or update queues, from the new version and the one it
# replaces (None for a create). Called before the write; its jobs are written with it, in its
# transaction, and only if it happens. ``unit`` is None on the API's one-statement create
# (``TenantStore.acreate``): an observer that must read first raises NeedsTransaction there.
Observer = Callable[["Unit | None", "Version", "Version | None"], list[QueuedJob]]


# A client-write guard: what a client's write of one resource type stores. Called with the unit,
# the client's resource (None for a delete) and the current version (None when there is none);
# returns the resource to store (server-owned elements kept from the current version) or raises
# FhirError. Only the FHIR interactions of clients run guards; the server's own writes do not.
Guard = Callable[["Unit", "dict[str, Any] | None", "Version | None"], "dict[str, Any] | None"]


class NeedsTransaction(Exception):
    """An observer must read inside the writing transaction; the write takes the ``Unit`` path."""


T = TypeVar("T")


def _everything(interaction: str, rtype: str) -> Access:
    return EVERYTHING


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Version:
    """One stored version; ``content`` is the serialized JSON served to clients as is."""

    type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    def resource(self) -> dict[str, Any]:
        return orjson.loads(self.content) if self.content else {}


@dataclass(frozen=True)
class WriteResult:
    version: Version
    created: bool
    status: int  # 201 created, 200 updated or matched an existing resource (conditional create)


@dataclass
class SearchResult:
    matches: list[Version]
    included: list[Version] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


def serialize(resource: dict[str, Any], rid: str, version_id: int, when: datetime) -> str:
    """Stamp id and meta (server-owned, R4 http.html §3.1.0.4) and serialize, resourceType first."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    doc: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": rid,
        "meta": {"versionId": str(version_id), "lastUpdated": instant(when), **meta},
    }
    for key, value in resource.items():
        if key not in doc:
            doc[key] = value
    return orjson.dumps(doc, default=exact_json.default).decode()  # decimals as sent


def _ordered(text: str) -> str:
    """Rows written while the column was JSONB come back in its key order; put resourceType,
    id and meta back in front (the ``json`` column keeps the text as written)."""
    if text.startswith('{"resourceType":'):
        return text
    doc = orjson.loads(text)
    head = {k: doc.pop(k) for k in ("resourceType", "id", "meta") if k in doc}
    return orjson.dumps({**head, **doc}).decode()


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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

    def for_tenant(self, tenant_id: str, access: AccessOf = _everything, audit: AuditRows | None = None,
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

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


class RowReader:
    """Single-row reads by identity on a raw DB-API cursor.

    This is the hottest path of the API (design target: reads at half the framework ceiling),
    and SQLAlchemy's per-execute machinery costs more than the query itself; the SQL is fixed,
    so it is written once per dialect here. PostgreSQL reads run on an autocommit pool, so a
    read is one round trip. The API's read route awaits ``aget``, which on PostgreSQL leaves
    the event loop free during that round trip (see ``async_pg``: a few connections, so
    requests do not queue behind a busy loop); ``get`` serves synchronous callers.
    """

    def __init__(self, engine: Engine, async_pg: AsyncPostgres | None = None) -> None:
        self.postgres = is_postgres(engine)
        self.async_pg = async_pg
        if self.postgres:
            # Autocommit connections hold no transaction, so returning one to the pool needs no
            # ROLLBACK round trip.
            self.engine = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=10,
                                           max_overflow=20, pool_recycle=1800, pool_reset_on_return=None)
            self.sql = ("SELECT version_id, last_updated, deleted, content::text FROM resource "
                        "WHERE tenant_id = %s AND type = %s AND id = %s")
            self.async_sql = ("SELECT version_id, last_updated, deleted, content::text FROM resource "
                              "WHERE tenant_id = $1 AND type = $2 AND id = $3")  # asyncpg's placeholders
        else:
            self.engine = engine
            self.sql = ("SELECT version_id, last_updated, deleted, content FROM resource "
                        "WHERE tenant_id = ? AND type = ? AND id = ?")

    def get(self, tenant_id: str, rtype: str, rid: str) -> tuple[int, datetime, bool, str] | None:
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute(self.sql, (tenant_id, rtype, rid))
            row = cur.fetchone()
            cur.close()
        finally:
            conn.close()
        return self._row(row)

    async def aget(self, tenant_id: str, rtype: str, rid: str) -> tuple[int, datetime, bool, str] | None:
        """``get`` that, on PostgreSQL, leaves the event loop free during the round trip."""
        if self.async_pg is None:
            return self.get(tenant_id, rtype, rid)
        return self._row(await self.async_pg.fetchone(self.async_sql, (tenant_id, rtype, rid)))

    @staticmethod
    def _row(row: Any) -> tuple[int, datetime, bool, str] | None:
        if row is None:
            return None
        version_id, updated, deleted, content = row
        if isinstance(updated, str):  # SQLite stores UTC without an offset
            updated = datetime.fromisoformat(updated).replace(tzinfo=UTC)
        return version_id, updated, bool(deleted), content


_INSERT_RESOURCE = R.insert().returning(R.c.pk)
_INSERT_HISTORY = H.insert()
_INSERT_INDEX = {t.name: t.insert() for t in (TOKEN, STRING, DATE, REF)}

_READ = (
    sa.select(R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content)
    .where(R.c.tenant_id == sa.bindparam("t"), R.c.type == sa.bindparam("ty"), R.c.id == sa.bindparam("i"))
)


@lru_cache(maxsize=32)
def _referencing(n: int, postgres: bool) -> sa.Select:
    """``Reader.referencing``'s statement for ``n`` links, built once (building it per call
    cost more than running it). One exact index lookup per link (UNION ALL) rather than an OR
    the planner must untangle; on PostgreSQL ``pk = ANY(ARRAY(…))`` runs the lookups first and
    then fetches rows by primary key, where a semi-join lets a stale row estimate pick a scan
    of the tenant's rows."""
    lookups = sa.union_all(*(sa.select(REF.c.res_pk).where(
        REF.c.tenant_id == sa.bindparam("t"), REF.c.type == sa.bindparam(f"s{i}"),
        REF.c.param == sa.bindparam(f"p{i}"), REF.c.target_id == sa.bindparam(f"i{i}"),
        REF.c.target_type == sa.bindparam(f"y{i}")) for i in range(n)))
    match = R.c.pk == sa.any_(sa.func.array(lookups.scalar_subquery())) if postgres else R.c.pk.in_(lookups)
    return (sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
            .where(R.c.tenant_id == sa.bindparam("t"), R.c.deleted.is_(False), match).order_by(R.c.pk))


class TenantStore:
    """All reads and writes of one tenant."""

    def __init__(self, store: Store, tenant_id: str, access: AccessOf = _everything,
                 audit: AuditRows | None = None) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.access = access
        # The audit rows of [(interaction, version)]; written in the transaction of the writes.
        self.audit = audit

    # -- reads -------------------------------------------------------------------------
    def read(self, rtype: str, rid: str) -> Version:
        access = self.access("r", rtype)
        if not access.unrestricted:
            with self.store.engine.connect() as conn:
                return Reader(self, conn).read(rtype, rid)
        return self._current(rtype, rid, self.store.rows.get(self.tenant_id, rtype, rid))

    async def aread(self, rtype: str, rid: str) -> Version:
        """``read`` for the API's hottest route: awaits the database where that pays (PostgreSQL)."""
        if not self.store.postgres or not self.access("r", rtype).unrestricted:
            return self.read(rtype, rid)
        return self._current(rtype, rid, await self.store.rows.aget(self.tenant_id, rtype, rid))

    def _current(self, rtype: str, rid: str, row: tuple[int, datetime, bool, str] | None) -> Version:
        if row is None:
            raise NotFound(f"{rtype}/{rid} is not known")
        version_id, updated, deleted, content = row
        if deleted:
            raise Gone(f"{rtype}/{rid} was deleted", version_id=version_id)
        return Version(rtype, rid, version_id, updated, False, _ordered(content) if self.store.postgres else content)

    def vread(self, rtype: str, rid: str, version_id: int) -> Version:
        with self.store.engine.connect() as conn:
            return Reader(self, conn).vread(rtype, rid, version_id)

    def history(self, rtype: str | None = None, rid: str | None = None, *, since: datetime | None = None,
                count: int = 50, page: str | None = None) -> tuple[list[Version], str | None]:
        with self.store.engine.connect() as conn:
            return Reader(self, conn).history(rtype, rid, since=since, count=count, page=page)

    def search(self, query: SearchQuery) -> SearchResult:
        with self.store.engine.connect() as conn:
            return Reader(self, conn).search(query)

    @contextmanager
    def reading(self) -> Iterator["Reader"]:
        """A Reader on its own connection: several reads, no write transaction (nor SQLite's
        write lock) held — for jobs that read, then talk to a payer, then write."""
        with self.store.engine.connect() as conn:
            yield Reader(self, conn)

    # -- writes ------------------------------------------------------------------------
    @contextmanager
    def unit(self) -> Iterator["Unit"]:
        """One database transaction for several writes (transaction Bundles, outbox jobs)."""
        with write_connection(self.store.engine) as conn, conn.begin():
            unit = Unit(self, conn)
            yield unit
            if self.audit and unit.written:
                write_rows(conn, self.audit(unit.written))

    def create(self, resource: dict[str, Any], *, if_none_exist: list[tuple[str, str]] | None = None,
               client: bool = False) -> WriteResult:
        with self.unit() as u:
            return u.create(resource, if_none_exist=if_none_exist, client=client)

    async def acreate(self, resource: dict[str, Any], *, client: bool = False) -> WriteResult:
        """``create`` for the API. On PostgreSQL a plain create is one statement (the row, its
        history, index and audit rows and the jobs it queues), which is a transaction by itself:
        it is awaited on asyncpg in the event loop, with no BEGIN/COMMIT round trips and no
        worker thread (three times the throughput of the ``Unit`` path). Elsewhere, or when an
        observer must read first, the ``Unit`` path runs in a worker thread."""
        store = self.store
        if store.async_pg is not None and not (client and resource["resourceType"] in store.guards):
            rtype = resource["resourceType"]
            check_write(self.access("c", rtype), resource, store.registry, store.base_url)
            now = store.clock()
            rid = str(uuid.uuid4())
            content = serialize(resource, rid, 1, now)
            version = Version(rtype, rid, 1, now, False, content)
            try:
                jobs = store.jobs_for(None, version, None)
            except NeedsTransaction:
                pass
            else:
                await pg_writes.arun(store.async_pg, self._pg_write("insert", version, resource, jobs))
                return WriteResult(version, created=True, status=201)
        return await store.run_write(self.create, resource, client=client)

    def _pg_write(self, kind: str, version: Version, resource: dict[str, Any], jobs: list[QueuedJob],
                  previous_version: int | None = None) -> pg_writes.Write:
        """The one-statement write (``pg_writes``) of ``version``, whose content serializes ``resource``."""
        audit = None
        if self.audit is not None:
            [audit] = self.audit([("update" if kind == "replace" else "create", version)])
        return pg_writes.prepare(kind, tenant_id=self.tenant_id, rtype=version.type, rid=version.id,
                                 version_id=version.version_id, now=version.last_updated,
                                 method="POST" if kind == "insert" else "PUT", content=version.content or "",
                                 index=self.index_values(version.type, resource), previous_version=previous_version,
                                 audit=audit, jobs=jobs)

    def index_values(self, rtype: str, resource: dict[str, Any]) -> IndexValues:
        """The search-index rows of ``resource`` (none for a type without search parameters)."""
        rt = self.store.registry.get(rtype)
        return extract(resource, rt, self.store.base_url) if rt is not None else IndexValues()

    def update(self, rtype: str, rid: str, resource: dict[str, Any], *, if_match: int | None = None,
               client: bool = False) -> WriteResult:
        with self.unit() as u:
            return u.update(rtype, rid, resource, if_match=if_match, client=client)

    async def aupdate(self, rtype: str, rid: str, resource: dict[str, Any], *,
                      if_match: int | None = None, client: bool = False) -> WriteResult:
        """``update`` for the API. On PostgreSQL the common case (the resource exists, the
        token is not limited to a patient, the observers need no reads) is two statements
        awaited on asyncpg: read the current version, then one compare-and-set write carrying
        history, index, audit row and jobs. Everything else (a new id, a stale ``If-Match``, a
        race lost to another writer) takes the ``Unit`` path in a thread, which gives the
        answer (it re-reads, retries or refuses with 412)."""
        store = self.store
        if store.async_pg is not None and self.access("u", rtype).unrestricted and not (client and rtype in store.guards):
            row = await store.rows.aget(self.tenant_id, rtype, rid)
            if row is not None and (if_match is None or row[0] == if_match):
                written = await self._aupdate(Version(rtype, rid, *row), resource)
                if written is not None:
                    return written
        return await store.run_write(self.update, rtype, rid, resource, if_match=if_match, client=client)

    async def _aupdate(self, current: Version, resource: dict[str, Any]) -> WriteResult | None:
        """The compare-and-set write of ``aupdate``; None when it must take the ``Unit`` path."""
        store = self.store
        now = store.clock()
        content = serialize(resource, current.id, current.version_id + 1, now)
        version = Version(current.type, current.id, current.version_id + 1, now, False, content)
        try:
            jobs = store.jobs_for(None, version, None if current.deleted else current)
        except NeedsTransaction:
            return None
        write = self._pg_write("replace", version, orjson.loads(content), jobs, previous_version=current.version_id)
        if await pg_writes.arun(store.async_pg, write) is None:
            return None  # another writer moved the version on
        return WriteResult(version, created=current.deleted, status=201 if current.deleted else 200)

    def conditional_update(self, rtype: str, criteria: list[tuple[str, str]], resource: dict[str, Any], *,
                           client: bool = False) -> WriteResult:
        with self.unit() as u:
            return u.conditional_update(rtype, criteria, resource, client=client)

    def delete(self, rtype: str, rid: str, *, client: bool = False) -> Version | None:
        with self.unit() as u:
            return u.delete(rtype, rid, client=client)

    def conditional_delete(self, rtype: str, criteria: list[tuple[str, str]], *, client: bool = False) -> Version | None:
        """Delete the one resource matching ``criteria`` (none: nothing to do; several: 412)."""
        with self.unit() as u:
            found = u.find_ids(rtype, criteria, interaction="d")
            if len(found) > 1:
                raise PreconditionFailed(f"Conditional delete matched {len(found)} {rtype} resources",
                                         code="multiple-matches")
            return u.delete(rtype, found[0], client=client) if found else None


class Reader:
    """Read operations on an open connection (shared by TenantStore and Unit)."""

    def __init__(self, ts: TenantStore, conn: Connection) -> None:
        self.ts = ts
        self.conn = conn
        self.tenant_id = ts.tenant_id
        self.postgres = ts.store.postgres

    def _content(self, text: str | None) -> str | None:
        return _ordered(text) if (text and self.postgres) else text

    def current(self, rtype: str, rid: str) -> Version | None:
        row = self.conn.execute(_READ, {"t": self.tenant_id, "ty": rtype, "i": rid}).first()
        if row is None:
            return None
        return Version(rtype, rid, row.version_id, row.last_updated, row.deleted, row.content)

    def current_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Version]:
        """Current versions of many (type, id) at once, deleted ones included; missing are absent.
        One statement instead of one per resource (claim batches read hundreds). Like
        ``current``, no access filter: for the server's own work, not a caller's reads."""
        wanted = sorted(set(keys))
        out: dict[tuple[str, str], Version] = {}
        for start in range(0, len(wanted), 500):
            rows = self.conn.execute(
                sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content)
                .where(R.c.tenant_id == self.tenant_id, sa.tuple_(R.c.type, R.c.id).in_(wanted[start:start + 500]))
            ).all()
            for r in rows:
                out[(r.type, r.id)] = Version(r.type, r.id, r.version_id, r.last_updated, r.deleted, r.content)
        return out

    def referencing(self, links: list[tuple[str, str, str, str]]) -> list[Version] | None:
        """Live resources whose search parameter points at a target, for several
        (source type, parameter, target type, target id) at once: what a series of
        ``Source?param=Target/id`` searches finds, in one statement. None when the caller's
        access is filtered for any of the source types (then run the searches, which apply it)."""
        if any(not self.ts.access("s", source).unrestricted for source, _, _, _ in links):
            return None
        params: dict[str, str] = {"t": self.tenant_id}
        for n, (source, param, ttype, tid) in enumerate(links):
            params.update({f"s{n}": source, f"p{n}": param, f"y{n}": ttype, f"i{n}": tid})
        rows = self.conn.execute(_referencing(len(links), self.postgres), params).all()
        # Content as stored (on PostgreSQL in JSONB's key order): for the server's own use.
        return [Version(r.type, r.id, r.version_id, r.last_updated, False, r.content) for r in rows]

    def visible(self, interaction: str, rtype: str, rid: str) -> bool:
        """Whether the caller's compartment and scope filters let it see ``rtype/rid``."""
        access = self.ts.access(interaction, rtype)
        if access.unrestricted:
            return True
        conds = conditions(access, self.tenant_id, rtype, self.ts.store.registry)
        row = self.conn.execute(sa.select(R.c.pk).where(
            R.c.tenant_id == self.tenant_id, R.c.type == rtype, R.c.id == rid, *conds)).first()
        return row is not None

    def read(self, rtype: str, rid: str) -> Version:
        v = self.current(rtype, rid)
        if v is None or not self.visible("r", rtype, rid):
            raise NotFound(f"{rtype}/{rid} is not known")
        if v.deleted:
            raise Gone(f"{rtype}/{rid} was deleted", version_id=v.version_id)
        return Version(v.type, v.id, v.version_id, v.last_updated, False, self._content(v.content))

    def vread(self, rtype: str, rid: str, version_id: int) -> Version:
        if not self.visible("r", rtype, rid):
            raise NotFound(f"{rtype}/{rid} is not known")
        row = self.conn.execute(
            sa.select(H.c.last_updated, H.c.deleted, H.c.content).where(
                H.c.tenant_id == self.tenant_id, H.c.type == rtype, H.c.id == rid, H.c.version_id == version_id)
        ).first()
        if row is None:
            raise NotFound(f"{rtype}/{rid} has no version {version_id}")
        if row.deleted:
            raise Gone(f"Version {version_id} of {rtype}/{rid} is a deletion", version_id=version_id)
        return Version(rtype, rid, version_id, row.last_updated, False, self._content(row.content))

    def history(self, rtype: str | None, rid: str | None, *, since: datetime | None, count: int,
                page: str | None) -> tuple[list[Version], str | None]:
        if rid and rtype and not self.visible("r", rtype, rid):
            return [], None
        # System history covers the types that offer history (not the audit trail).
        types = [rtype] if rtype else self.ts.store.registry.offering("history-type")
        if not rid and any(not self.ts.access("s", t).unrestricted for t in types):
            raise FhirError(403, "forbidden", "History across resources is not available to a token limited "
                            "to one patient or to filtered scopes; read each resource's history instead")
        conds = [H.c.tenant_id == self.tenant_id, H.c.type == rtype if rtype else H.c.type.in_(types)]
        if rid:
            conds.append(H.c.id == rid)
        if since:
            conds.append(H.c.last_updated >= since)
        binding = history_binding(rtype, rid, since)
        if page:
            conds.append(H.c.pk < self.ts.store.pages.read(page, self.tenant_id, binding).pk)
        rows = self.conn.execute(
            sa.select(H.c.pk, H.c.type, H.c.id, H.c.version_id, H.c.last_updated, H.c.deleted, H.c.method, H.c.content)
            .where(*conds).order_by(H.c.pk.desc()).limit(count + 1)
        ).all()
        more = len(rows) > count
        rows = rows[:count]
        versions = [Version(r.type, r.id, r.version_id, r.last_updated, r.deleted, self._content(r.content)) for r in rows]
        next_cursor = self.ts.store.pages.issue(self.tenant_id, binding, Position(None, rows[-1].pk)) \
            if (more and rows) else None
        return versions, next_cursor

    def find_ids(self, rtype: str, criteria: list[tuple[str, str]], limit: int = 2,
                 interaction: str = "s") -> list[str]:
        """Ids matching a conditional-operation query (If-None-Exist, conditional update/reference)."""
        reg = self.ts.store.registry
        rt = reg.get(rtype)
        if rt is None:
            raise NotFound(f"Resource type '{rtype}' is not supported")
        query = parse_search(rt, criteria, registry=reg, base=self.ts.store.base_url)
        if query.ignored or not query.clauses:
            unknown = ", ".join(query.ignored) or "none given"
            raise FhirError(400, "invalid", f"Conditional criteria must use supported search parameters ({unknown})")
        access = conditions(self.ts.access(interaction, rtype), self.tenant_id, rtype, reg)
        rows = self.conn.execute(
            sa.select(R.c.id).where(*query_conditions(self.tenant_id, query), *access).limit(limit)
        ).all()
        return [r.id for r in rows]

    def search(self, query: SearchQuery) -> SearchResult:
        conds = query_conditions(self.tenant_id, query) + conditions(
            self.ts.access("s", query.resource_type), self.tenant_id, query.resource_type, self.ts.store.registry)
        total = None
        if query.total != "none" or query.summary_count:
            total = self.conn.execute(sa.select(sa.func.count()).select_from(R).where(*conds)).scalar_one()
        if query.summary_count or query.count == 0:
            return SearchResult([], [], total)

        expr, desc, kind = sort_expression(query)
        direction = "n"
        pages, binding = self.ts.store.pages, search_binding(query)
        if query.page:
            value_text, pk, direction = astuple(pages.read(query.page, self.tenant_id, binding))
            after = (from_cursor_value(kind, value_text), pk)
            # A "previous" page walks the order backwards from the first row of the current page.
            walk_desc = desc if direction == "n" else not desc
            conds = [*conds, keyset_condition(expr, walk_desc, after)]
        else:
            walk_desc = desc
        sort_col = (expr if expr is not None else R.c.pk).label("sortkey")
        order = [sort_col.desc() if walk_desc else sort_col.asc(), R.c.pk.desc() if walk_desc else R.c.pk.asc()]
        if expr is None:
            order = order[:1]
        rows = self.conn.execute(
            sa.select(R.c.pk, R.c.id, R.c.version_id, R.c.last_updated, R.c.content, sort_col)
            .where(*conds).order_by(*order).limit(query.count + 1)
        ).all()
        more = len(rows) > query.count
        rows = rows[: query.count]
        if direction == "p":
            rows.reverse()
        matches = [Version(query.resource_type, r.id, r.version_id, r.last_updated, False, self._content(r.content))
                   for r in rows]
        result = SearchResult(matches, total=total)
        if rows:
            first, last = rows[0], rows[-1]
            has_next = more if direction == "n" else True
            has_prev = (query.page is not None) if direction == "n" else more
            if has_next:
                result.next_cursor = pages.issue(self.tenant_id, binding, Position(
                    to_cursor_value(kind, last.sortkey if expr is not None else None), last.pk, "n"))
            if has_prev:
                result.prev_cursor = pages.issue(self.tenant_id, binding, Position(
                    to_cursor_value(kind, first.sortkey if expr is not None else None), first.pk, "p"))
        result.included = self._included(query, [r.pk for r in rows], [r.id for r in rows])
        return result

    def _included(self, query: SearchQuery, pks: list[int], ids: list[str]) -> list[Version]:
        if not pks or not (query.includes or query.revincludes):
            return []
        seen: set[tuple[str, str]] = {(query.resource_type, i) for i in ids}
        out: list[Version] = []
        targets: list[tuple[str, str]] = []
        for inc in query.includes:
            conds = [REF.c.res_pk.in_(pks), REF.c.param == inc.param]
            if inc.target_type:
                conds.append(REF.c.target_type == inc.target_type)
            targets.extend((r.target_type, r.target_id) for r in self.conn.execute(
                sa.select(REF.c.target_type, REF.c.target_id).where(*conds)).all())
        for rtype, rid in dict.fromkeys(targets):
            if (rtype, rid) in seen:
                continue
            v = self.current(rtype, rid)
            if v and not v.deleted and self.visible("r", rtype, rid):
                seen.add((rtype, rid))
                out.append(Version(rtype, rid, v.version_id, v.last_updated, False, self._content(v.content)))
        for inc in query.revincludes:
            if inc.target_type and inc.target_type != query.resource_type:
                continue
            rows = self.conn.execute(
                sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
                .where(R.c.tenant_id == self.tenant_id, R.c.deleted.is_(False), R.c.pk.in_(
                    sa.select(REF.c.res_pk).where(
                        REF.c.tenant_id == self.tenant_id, REF.c.type == inc.source_type, REF.c.param == inc.param,
                        REF.c.target_type == query.resource_type, REF.c.target_id.in_(ids))))
            ).all()
            for r in rows:
                if (r.type, r.id) not in seen and self.visible("r", r.type, r.id):
                    seen.add((r.type, r.id))
                    out.append(Version(r.type, r.id, r.version_id, r.last_updated, False, self._content(r.content)))
        return out


class Unit(Reader):
    """Writes inside one open transaction."""

    def __init__(self, ts: TenantStore, conn: Connection) -> None:
        super().__init__(ts, conn)
        self.now = ts.store.clock()
        # (create | update | delete, version) still to audit at commit; PostgreSQL's one-statement
        # writes carry their own audit row and are not listed.
        self.written: list[tuple[str, Version]] = []
        #: Lookups that hold for the rest of the transaction (a batch of claims reads the same
        #: practice and payer once). Resource entries, keyed ("resource", type, id), are dropped
        #: when this unit writes that resource.
        self.memo: dict[Any, Any] = {}

    def lock(self, *parts: str) -> None:
        """Serialize conditional operations on the same criteria (SQLite already is)."""
        if self.postgres:
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(self.tenant_id, *parts)})

    def create(self, resource: dict[str, Any], *, if_none_exist: list[tuple[str, str]] | None = None,
               rid: str | None = None, client: bool = False) -> WriteResult:
        """POST semantics; ``client``: a client's create (its type's guard applies)."""
        rtype = resource["resourceType"]
        check_offered(self.ts.store.registry, "create", rtype)  # whoever writes (API, jobs, loader)
        check_write(self.ts.access("c", rtype), resource, self.ts.store.registry, self.ts.store.base_url)
        if if_none_exist is not None:
            self.lock(rtype, orjson.dumps(sorted(if_none_exist)).decode())
            found = self.find_ids(rtype, if_none_exist, interaction="c")
            if len(found) > 1:
                raise PreconditionFailed(f"If-None-Exist matched {len(found)} {rtype} resources",
                                         code="multiple-matches")
            if found:
                return WriteResult(self.read(rtype, found[0]), created=False, status=200)
        if client:
            resource = self._guarded(rtype, resource, None)
        return self._insert(rtype, rid or str(uuid.uuid4()), resource, version_id=1)

    def update(self, rtype: str, rid: str, resource: dict[str, Any], *, if_match: int | None = None,
               known: Version | None = None, fresh_id: bool = False, client: bool = False) -> WriteResult:
        """PUT semantics: ``resource`` replaces whatever version is current (unless ``if_match``
        names another). ``known``: the current version the caller read in this transaction;
        ``fresh_id``: an id the caller just minted. Either saves the read before the write. A
        change derived from the stored content goes through ``modify`` instead, which never
        writes over a version it did not read. ``client``: a client's update (its type's guard
        applies, against the version it replaces)."""
        check_offered(self.ts.store.registry, "update", rtype)
        check_write(self.ts.access("u", rtype), {**resource, "id": rid}, self.ts.store.registry, self.ts.store.base_url)
        for attempt in range(5):
            if attempt == 0 and (known is not None or fresh_id):
                current = known
            else:
                current = self.current(rtype, rid)
            if current is None:
                if if_match is not None:
                    raise PreconditionFailed(f"{rtype}/{rid} does not exist, so If-Match cannot match")
                body = self._guarded(rtype, resource, None) if client else resource
                inserted = self._insert(rtype, rid, body, version_id=1, on_conflict_skip=True)
                if inserted is not None:
                    return inserted
                continue  # created concurrently: update it instead
            if not self.visible("u", rtype, rid):
                raise NotFound(f"{rtype}/{rid} is not known")
            if if_match is not None and current.version_id != if_match:
                raise PreconditionFailed(
                    f"{rtype}/{rid} is at version {current.version_id}, not {if_match} (If-Match)")
            body = self._guarded(rtype, resource, current) if client else resource
            result = self._replace(current, body)
            if result is not None:
                return result
            if if_match is not None:
                raise PreconditionFailed(f"{rtype}/{rid} was changed concurrently (If-Match {if_match})")
        raise FhirError(409, "conflict", f"{rtype}/{rid} is being changed by others; retry")

    def modify(self, rtype: str, rid: str, change: Callable[[dict[str, Any]], bool | None], *,
               attempts: int = 8) -> WriteResult | None:
        """Read-modify-write, for every change the server derives from what is stored (posting
        an answer, queueing a claim, closing a Task). ``change`` edits a fresh copy of the
        current version (returning False, or leaving it as it was, writes nothing). The write is
        compare-and-set on the version read; when another writer got there first, the change is
        applied again to the newer version, so no concurrent state is ever written over.
        Returns None when nothing was written; NotFound/Gone when there is nothing to change.
        ``change`` may run more than once: it edits the resource and has no other effects."""
        for _ in range(attempts):
            current = self.read(rtype, rid)
            resource = current.resource()
            if change(resource) is False or resource == current.resource():
                return None
            try:
                return self.update(rtype, rid, resource, if_match=current.version_id, known=current)
            except PreconditionFailed:
                continue  # changed since it was read: apply the change to the newer version
        raise FhirError(409, "conflict", f"{rtype}/{rid} is being changed by others; retry")

    def conditional_update(self, rtype: str, criteria: list[tuple[str, str]], resource: dict[str, Any], *,
                           client: bool = False) -> WriteResult:
        check_offered(self.ts.store.registry, "update", rtype)
        self.lock(rtype, orjson.dumps(sorted(criteria)).decode())
        found = self.find_ids(rtype, criteria, interaction="u")
        body_id = resource.get("id")
        if len(found) > 1:
            raise PreconditionFailed(f"Conditional update matched {len(found)} {rtype} resources",
                                     code="multiple-matches")
        if found:
            if body_id and body_id != found[0]:
                raise FhirError(400, "invalid", f"The criteria matched {rtype}/{found[0]} but the body has id {body_id}",
                                expression=[f"{rtype}.id"])
            return self.update(rtype, found[0], resource, client=client)
        if body_id:
            return self.update(rtype, body_id, resource, client=client)
        if client:
            resource = self._guarded(rtype, resource, None)
        return self._insert(rtype, str(uuid.uuid4()), resource, version_id=1)

    def delete(self, rtype: str, rid: str, *, client: bool = False) -> Version | None:
        check_offered(self.ts.store.registry, "delete", rtype)
        current = self.current(rtype, rid)
        if current is None or current.deleted or not self.visible("d", rtype, rid):
            return None
        if client:
            self._guarded(rtype, None, current)
        new_version = current.version_id + 1
        res = self.conn.execute(
            R.update()
            .where(R.c.tenant_id == self.tenant_id, R.c.type == rtype, R.c.id == rid,
                   R.c.version_id == current.version_id)
            .values(version_id=new_version, last_updated=self.now, deleted=True)
            .returning(R.c.pk)
        ).first()
        if res is None:
            return self.delete(rtype, rid, client=client)
        self._clear_index(res.pk)
        self.conn.execute(H.insert().values(
            tenant_id=self.tenant_id, type=rtype, id=rid, version_id=new_version, last_updated=self.now,
            method="DELETE", deleted=True, content=None))
        version = Version(rtype, rid, new_version, self.now, True, None)
        self.memo.pop(("resource", rtype, rid), None)
        self.written.append(("delete", version))
        return version

    # -- internals ---------------------------------------------------------------------
    def _guarded(self, rtype: str, resource: dict[str, Any] | None, current: Version | None) -> Any:
        """What a client's write of ``resource`` over ``current`` stores (see ``Guard``)."""
        guard = self.ts.store.guards.get(rtype)
        if guard is None:
            return resource
        return guard(self, resource, None if current is None or current.deleted else current)

    def _insert(self, rtype: str, rid: str, resource: dict[str, Any], *, version_id: int,
                on_conflict_skip: bool = False) -> WriteResult | None:
        content = serialize(resource, rid, version_id, self.now)
        version = Version(rtype, rid, version_id, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None)
        if self.postgres:
            kind = "insert_if_absent" if on_conflict_skip else "insert"
            if pg_writes.run(self.conn, self.ts._pg_write(kind, version, resource, jobs)) is None:
                return None
            return self._written(version, None, jobs, audited=self.ts.audit is not None)
        values = dict(tenant_id=self.tenant_id, type=rtype, id=rid, version_id=version_id,
                      last_updated=self.now, deleted=False, content=content)
        if on_conflict_skip:
            stmt = dialect_insert(self.conn, R).values(**values).on_conflict_do_nothing(
                index_elements=["tenant_id", "type", "id"]).returning(R.c.pk)
            row = self.conn.execute(stmt).first()
        else:
            row = self.conn.execute(_INSERT_RESOURCE, values).first()
        if row is None:
            return None
        self._write_history(rtype, rid, version_id, "PUT" if on_conflict_skip else "POST", content)
        self._write_index(row.pk, rtype, resource)
        return self._written(version, None, jobs)

    def _replace(self, current: Version, resource: dict[str, Any]) -> WriteResult | None:
        new_version = current.version_id + 1
        content = serialize(resource, current.id, new_version, self.now)
        version = Version(current.type, current.id, new_version, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None if current.deleted else current)
        if self.postgres:
            # The index is taken from the stored form, as on SQLite (the same resource either way).
            write = self.ts._pg_write("replace", version, orjson.loads(content), jobs,
                                      previous_version=current.version_id)
            if pg_writes.run(self.conn, write) is None:
                return None  # lost a compare-and-set race
            return self._written(version, current, jobs, audited=self.ts.audit is not None)
        row = self.conn.execute(
            R.update()
            .where(R.c.tenant_id == self.tenant_id, R.c.type == current.type, R.c.id == current.id,
                   R.c.version_id == current.version_id)
            .values(version_id=new_version, last_updated=self.now, deleted=False, content=content)
            .returning(R.c.pk)
        ).first()
        if row is None:
            return None  # lost a compare-and-set race
        self._write_history(current.type, current.id, new_version, "PUT", content)
        self._clear_index(row.pk)
        self._write_index(row.pk, current.type, orjson.loads(content))
        return self._written(version, current, jobs)

    def _written(self, version: Version, replaced: Version | None, jobs: list[QueuedJob], *,
                 audited: bool = False) -> WriteResult:
        """Bookkeeping after a write: the jobs (unless the one statement wrote them), the audit
        row still to write at commit (unless the statement carried it), the memo."""
        if jobs and not self.postgres:
            insert_jobs(self.conn, self.tenant_id, self.now, jobs)
        self.memo.pop(("resource", version.type, version.id), None)
        created = replaced is None or replaced.deleted
        if not audited:
            self.written.append(("create" if replaced is None else "update", version))
        return WriteResult(version, created=created, status=201 if created else 200)

    def _write_history(self, rtype: str, rid: str, version_id: int, method: str, content: str) -> None:
        self.conn.execute(_INSERT_HISTORY, {
            "tenant_id": self.tenant_id, "type": rtype, "id": rid, "version_id": version_id,
            "last_updated": self.now, "method": method, "deleted": False, "content": content})

    def _clear_index(self, pk: int) -> None:
        for table in (TOKEN, STRING, DATE, REF):
            self.conn.execute(table.delete().where(table.c.res_pk == pk))

    def _write_index(self, pk: int, rtype: str, resource: dict[str, Any]) -> None:
        idx = self.ts.index_values(rtype, resource)
        common = {"tenant_id": self.tenant_id, "type": rtype, "res_pk": pk}
        if idx.tokens:
            self.conn.execute(_INSERT_INDEX["search_token"],
                              [dict(common, param=p, system=s, code=c) for p, s, c in idx.tokens])
        if idx.strings:
            self.conn.execute(_INSERT_INDEX["search_string"],
                              [dict(common, param=p, value=v, exact=e) for p, v, e in idx.strings])
        if idx.dates:
            self.conn.execute(_INSERT_INDEX["search_date"],
                              [dict(common, param=p, start=s, end=e) for p, s, e in idx.dates])
        if idx.references:
            self.conn.execute(_INSERT_INDEX["search_reference"],
                              [dict(common, param=p, target_type=t, target_id=i) for p, t, i in idx.references])
