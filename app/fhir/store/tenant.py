"""One tenant's view of the store: every read and write filtered by the tenant, with the
caller's access filters and audit; PostgreSQL's one-statement fast paths for the API."""
from __future__ import annotations

import uuid
from datetime import datetime
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import orjson

from app.audit import write_rows
from app.db import write_connection
from app.fhir.access import check_write
from app.fhir.errors import Gone, NotFound, PreconditionFailed
from app.fhir.extract import IndexValues, affected_params, extract, number_units
from app.fhir.search_params import SearchQuery
import app.fhir.store.pg_writes as pg_writes
from app.fhir.store import derived
from app.fhir.store.reader import Reader
from app.fhir.store.types import (
    AccessOf, AuditRows, NeedsTransaction, SearchResult, Version, WriteResult, everything, in_key_order, serialize,
)
from app.fhir.store.unit import Unit
from app.outbox import QueuedJob

if TYPE_CHECKING:
    from app.fhir.store.store import Store


class TenantStore:
    """All reads and writes of one tenant."""

    def __init__(self, store: Store, tenant_id: str, access: AccessOf = everything,
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
        return Version(rtype, rid, version_id, updated, False, in_key_order(content) if self.store.postgres else content)

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
            for hook in unit.before_commit.values():
                hook(unit)
            unit.settle()
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
        if store.async_pg is not None and not (client and resource["resourceType"] in store.guards) \
                and not derived.involves(store.registry, resource["resourceType"]):
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
                await pg_writes.arun(store.async_pg, self.pg_write("insert", version, resource, jobs))
                return WriteResult(version, created=True, status=201)
        return await store.run_write(self.create, resource, client=client)

    def pg_write(self, kind: str, version: Version, resource: dict[str, Any], jobs: list[QueuedJob],
                 previous_version: int | None = None, replaced: dict[str, Any] | None = None) -> pg_writes.Write:
        """The one-statement write (``pg_writes``) of ``version``, whose content serializes
        ``resource``. A replace of ``replaced`` (the content it replaces) rewrites the index rows
        of the parameters whose elements changed, not all of them (``extract.affected_params``):
        a claim's lifecycle step rewrote some twenty rows to change two or three."""
        audit = None
        if self.audit is not None:
            [audit] = self.audit([("update" if kind == "replace" else "create", version)])
        rt = self.store.registry.get(version.type)
        only = None
        if kind == "replace" and replaced is not None and rt is not None and version.type not in self.store.indexers:
            only = affected_params(rt, replaced, resource)
        return pg_writes.prepare(kind, tenant_id=self.tenant_id, rtype=version.type, rid=version.id,
                                 version_id=version.version_id, now=version.last_updated,
                                 method="POST" if kind == "insert" else "PUT", content=version.content or "",
                                 index=self.index_values(version.type, resource, only), previous_version=previous_version,
                                 audit=audit, jobs=jobs, keep=derived.own_params(self.store.registry, version.type),
                                 only=only)

    def index_values(self, rtype: str, resource: dict[str, Any], only: frozenset[str] | None = None) -> IndexValues:
        """The search-index rows of ``resource`` (none for a type without search parameters);
        ``only``: of these parameters alone."""
        rt = self.store.registry.get(rtype)
        if rt is None:
            return IndexValues()
        values = extract(resource, rt, self.store.base_url, only)
        indexer = self.store.indexers.get(rtype)
        if indexer is not None:
            values.numbers += [(param, number_units(v)) for param, v in indexer(resource) if only is None or param in only]
        return values

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
        if store.async_pg is not None and self.access("u", rtype).unrestricted and not (client and rtype in store.guards) \
                and not derived.involves(store.registry, rtype):
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
        write = self.pg_write("replace", version, orjson.loads(content), jobs, previous_version=current.version_id)
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
