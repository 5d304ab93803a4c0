"""Writes inside one open transaction: create, update (PUT), read-modify-write, conditional
create/update, delete, with their history and index rows, jobs and audit rows."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.db import ResourceHistoryRow, dialect_insert
from app.fhir.access import check_write
from app.fhir.errors import FhirError, NotFound, PreconditionFailed
from app.fhir.interactions import check_offered
from app.fhir.extract import IndexValues
from app.fhir.search_sql import DATE, NUMBER, REF, R, STRING, TOKEN
import app.fhir.store.pg_writes as pg_writes
from app.fhir.store import derived
from app.fhir.store.reader import Reader
from app.fhir.store.types import Version, WriteResult, lock_key, serialize
from app.outbox import QueuedJob, insert_jobs

if TYPE_CHECKING:
    from app.fhir.store.tenant import TenantStore

H = ResourceHistoryRow.__table__


_INSERT_RESOURCE = R.insert().returning(R.c.pk)
_INSERT_HISTORY = H.insert()
_LOCK = sa.text("SELECT pg_advisory_xact_lock(:k)")
# taken in the array's order (a function scan of unnest yields it in order)
_LOCK_MANY = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:ks AS bigint[])) AS k")
_INSERT_INDEX = {t.name: t.insert() for t in (TOKEN, STRING, DATE, REF, NUMBER)}
# IndexValues attribute -> (index table, the columns of each of its tuples)
_INDEX_ROWS = {"tokens": (TOKEN, ("param", "system", "code")), "strings": (STRING, ("param", "value", "exact")),
               "dates": (DATE, ("param", "start", "end")),
               "references": (REF, ("param", "target_type", "target_id")),
               "numbers": (NUMBER, ("param", "value"))}
INDEX_TABLES = tuple(table for table, _ in _INDEX_ROWS.values())


def index_rows(tenant_id: str, rtype: str, pk: int, values: IndexValues) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
    """The rows of each index table that ``values`` (one resource's) make: the one translation
    from extracted values to rows, for a write and for ``reindex``."""
    common = {"tenant_id": tenant_id, "type": rtype, "res_pk": pk}
    return [(table, [dict(common, **dict(zip(columns, row))) for row in getattr(values, kind)])
            for kind, (table, columns) in _INDEX_ROWS.items()]


@dataclass(frozen=True)
class _Pending:
    """A prepared one-statement write (PostgreSQL) and what its bookkeeping needs afterwards."""

    current: Version | None
    version: Version
    stored: dict[str, Any]
    jobs: list[QueuedJob]
    write: pg_writes.Write


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
        #: Run once, in order, just before the transaction commits (not when it fails): writes
        #: derived from many of the unit's writes, made in one statement instead of one each.
        self.before_commit: dict[str, Callable[["Unit"], None]] = {}
        # Derived number rows to recompute in ``settle``: of resources that had one (delete and
        # insert), and of resources created in this unit (insert only).
        self._stale: dict[derived.Derived, set[str]] = {}
        self._fresh: dict[derived.Derived, set[str]] = {}
        self._held: set[int] = set()  # the advisory locks this transaction holds (``lock_many``)

    def lock(self, *parts: str) -> None:
        """Serialize conditional operations on the same criteria (SQLite already is)."""
        self.lock_many([parts])

    def lock_many(self, keys: list[tuple[str, ...]]) -> None:
        """``lock`` each of ``keys``, in their order, in one statement. A transaction's locks are
        held until it ends, so a key it holds already costs no round trip (a batch of visits is
        locked at once, before each generation asks for its own)."""
        if not self.postgres:
            return
        wanted = [k for k in dict.fromkeys(lock_key(self.tenant_id, *parts) for parts in keys) if k not in self._held]
        if len(wanted) == 1:
            self.conn.execute(_LOCK, {"k": wanted[0]})
        elif wanted:
            self.conn.execute(_LOCK_MANY, {"ks": wanted})
        self._held.update(wanted)

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
            if change(resource) is False or resource == current.parsed:
                return None
            try:
                return self.update(rtype, rid, resource, if_match=current.version_id, known=current)
            except PreconditionFailed:
                continue  # changed since it was read: apply the change to the newer version
        raise FhirError(409, "conflict", f"{rtype}/{rid} is being changed by others; retry")

    def update_many(self, resources: list[dict[str, Any]]) -> list[WriteResult]:
        """``update`` of many resources by their ids, as the server writes them (no If-Match, no
        client guard): posting an answer stores a ClaimResponse or an EOB per claim. On
        PostgreSQL the current versions are read in one statement, the writes sent in one
        pipelined round trip and their derived rows recomputed together; a write that meets a
        concurrent one goes the one-by-one way."""
        keys = [(r["resourceType"], r["id"]) for r in resources]
        if not self.postgres or len(set(keys)) != len(keys) or len(keys) < 2:
            return [self.update(rtype, rid, r) for (rtype, rid), r in zip(keys, resources)]
        registry = self.ts.store.registry
        for (rtype, rid), r in zip(keys, resources):
            check_offered(registry, "update", rtype)
            check_write(self.ts.access("u", rtype), {**r, "id": rid}, registry, self.ts.store.base_url)
        found = self.current_many(keys)
        pending: list[_Pending] = []
        for (rtype, rid), r in zip(keys, resources):
            current = found.get((rtype, rid))
            if current is None:
                pending.append(self._insertion(rtype, rid, r, version_id=1, on_conflict_skip=True))
                continue
            if not self.visible("u", rtype, rid):
                raise NotFound(f"{rtype}/{rid} is not known")
            if not current.deleted:
                current = self._live(current)
            pending.append(self._replacement(current, r))
        pks = pg_writes.run_many(self.conn, [p.write for p in pending])
        self._derive_many([(p.version.type, p.version.id, p.stored, p.current)
                           for p, pk in zip(pending, pks) if pk is not None])
        return [self._bookkeeping(p) if pk is not None else self.update(rtype, rid, r)
                for p, pk, (rtype, rid), r in zip(pending, pks, keys, resources)]

    def modify_many(self, rtype: str, changes: dict[str, Callable[[dict[str, Any]], bool | None]]
                    ) -> dict[str, WriteResult | None]:
        """``modify`` for many resources of one type (posting an answer moves every claim it
        names): read in one statement and, on PostgreSQL, written in one pipelined round trip
        instead of two round trips each. Each id maps to what ``modify`` would return, except
        that an id with nothing to change (unknown, deleted, not visible) maps to None instead
        of raising. A write that loses its compare-and-set race is applied again through
        ``modify``, so no concurrent state is written over."""
        check_offered(self.ts.store.registry, "update", rtype)
        found = self.current_many([(rtype, rid) for rid in changes])
        results: dict[str, WriteResult | None] = {}
        pending: list[tuple[str, _Pending]] = []
        for rid, change in changes.items():
            current = found.get((rtype, rid))
            results[rid] = None
            if current is None or current.deleted or not self.visible("u", rtype, rid):
                continue
            current = self._live(current)
            resource = current.resource()
            if change(resource) is False or resource == current.parsed:
                continue
            check_write(self.ts.access("u", rtype), {**resource, "id": rid}, self.ts.store.registry,
                        self.ts.store.base_url)
            if not self.postgres:
                results[rid] = self._replace(current, resource) or self.modify(rtype, rid, change)
                continue
            pending.append((rid, self._replacement(current, resource)))
        pks = pg_writes.run_many(self.conn, [p.write for _, p in pending])
        self._derive_many([(rtype, p.version.id, p.stored, p.current) for (_, p), pk in zip(pending, pks)
                           if pk is not None])
        for (rid, p), pk in zip(pending, pks):
            results[rid] = self._bookkeeping(p) if pk is not None else self.modify(rtype, rid, changes[rid])
        return results

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
        self._derive(rtype, rid, None, current)
        version = Version(rtype, rid, new_version, self.now, True, None)
        # the observers see the delete too (``new.deleted``, no content): rows kept in step with
        # a resource, such as the KPIs' facts, must lose it
        jobs = self.ts.store.jobs_for(self, version, current)
        if jobs:
            insert_jobs(self.conn, self.tenant_id, self.now, jobs)
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
        if self.postgres:
            pending = self._insertion(rtype, rid, resource, version_id=version_id, on_conflict_skip=on_conflict_skip)
            if pg_writes.run(self.conn, pending.write) is None:
                return None
            return self._finish(pending)
        content = serialize(resource, rid, version_id, self.now)
        version = Version(rtype, rid, version_id, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None)
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
        self._derive(rtype, rid, resource, None)
        return self._written(version, None, jobs)

    def _insertion(self, rtype: str, rid: str, resource: dict[str, Any], *, version_id: int,
                   on_conflict_skip: bool) -> _Pending:
        """The one-statement write (PostgreSQL) creating ``rtype/rid``."""
        content = serialize(resource, rid, version_id, self.now)
        version = Version(rtype, rid, version_id, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None)
        kind = "insert_if_absent" if on_conflict_skip else "insert"
        return _Pending(None, version, resource, jobs, self.ts.pg_write(kind, version, resource, jobs))

    def _replacement(self, current: Version, resource: dict[str, Any]) -> _Pending:
        """The one-statement write (PostgreSQL) replacing ``current`` with ``resource``; the
        index is taken from the stored form, as on SQLite (the same resource either way)."""
        new_version = current.version_id + 1
        content = serialize(resource, current.id, new_version, self.now)
        version = Version(current.type, current.id, new_version, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None if current.deleted else current)
        stored = version.parsed
        write = self.ts.pg_write("replace", version, stored, jobs, previous_version=current.version_id,
                                 replaced=None if current.deleted else current.parsed)
        return _Pending(current, version, stored, jobs, write)

    def _finish(self, pending: _Pending) -> WriteResult:
        """After a pending write went through: its derived rows and bookkeeping."""
        self._derive(pending.version.type, pending.version.id, pending.stored, pending.current)
        return self._bookkeeping(pending)

    def _bookkeeping(self, pending: _Pending) -> WriteResult:
        return self._written(pending.version, pending.current, pending.jobs, audited=self.ts.audit is not None)

    def _replace(self, current: Version, resource: dict[str, Any]) -> WriteResult | None:
        if self.postgres:
            pending = self._replacement(current, resource)
            if pg_writes.run(self.conn, pending.write) is None:
                return None  # lost a compare-and-set race
            return self._finish(pending)
        new_version = current.version_id + 1
        content = serialize(resource, current.id, new_version, self.now)
        version = Version(current.type, current.id, new_version, self.now, False, content)
        jobs = self.ts.store.jobs_for(self, version, None if current.deleted else current)
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
        self._clear_index(row.pk, derived.own_params(self.ts.store.registry, current.type))
        stored = version.parsed
        self._write_index(row.pk, current.type, stored)
        self._derive(current.type, current.id, stored, current)
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

    def _derive(self, rtype: str, rid: str, new: dict[str, Any] | None, old: Version | None) -> None:
        """Note the derived number rows this write changes (``derived``; recomputed in ``settle``)."""
        self._derive_many([(rtype, rid, new, old)])

    def _derive_many(self, writes: list[tuple[str, str, dict[str, Any] | None, Version | None]]) -> None:
        """Note the derived number rows these writes (type, id, new content, replaced version)
        change, to recompute in ``settle``: the resources' own, and those of the targets their
        references name before and after."""
        registry = self.ts.store.registry
        plan = derived.plan(registry)
        for rtype, rid, new, old in writes:
            before = old.parsed if old is not None and not old.deleted else None
            if new is not None:
                for d in plan.own.get(rtype, ()):
                    if before is None or not derived.base_unchanged(registry, d, new, before):
                        # else its row is still right
                        (self._fresh if old is None else self._stale).setdefault(d, set()).add(rid)
            for d in plan.fed_by.get(rtype, ()):
                targets = self._stale.setdefault(d, set())
                for resource in (new, before):
                    if resource is not None:
                        targets.update(tid for param, ttype, tid in self.ts.index_values(rtype, resource).references
                                       if param == d.via and ttype == d.target)

    def settle(self) -> None:
        """Recompute the derived rows the unit's writes noted: before it commits, and before it
        searches (only searches read them). Every target is locked first, all in one statement
        and one order, so that concurrent writers for one target compute one after the other;
        then one refresh statement per derived number. Done once for a batch of writes (fifty
        generated claims), not twice per write."""
        if not (self._stale or self._fresh):
            return
        stale, fresh, self._stale, self._fresh = self._stale, self._fresh, {}, {}
        self.lock_many(sorted({("derived", d.target, rid) for side in (stale, fresh)
                               for d, ids in side.items() for rid in ids}))
        for d, ids in stale.items():
            derived.refresh(self.conn, self.tenant_id, d, ids)
        for d, ids in fresh.items():
            derived.refresh(self.conn, self.tenant_id, d, ids - stale.get(d, set()), fresh=True)

    def _write_history(self, rtype: str, rid: str, version_id: int, method: str, content: str) -> None:
        self.conn.execute(_INSERT_HISTORY, {
            "tenant_id": self.tenant_id, "type": rtype, "id": rid, "version_id": version_id,
            "last_updated": self.now, "method": method, "deleted": False, "content": content})

    def _clear_index(self, pk: int, keep: tuple[str, ...] = ()) -> None:
        """Delete the index rows of ``pk``, except the derived number rows ``keep``."""
        for table in (TOKEN, STRING, DATE, REF):
            self.conn.execute(table.delete().where(table.c.res_pk == pk))
        self.conn.execute(NUMBER.delete().where(NUMBER.c.res_pk == pk, NUMBER.c.param.not_in(keep)))

    def _write_index(self, pk: int, rtype: str, resource: dict[str, Any]) -> None:
        for table, rows in index_rows(self.tenant_id, rtype, pk, self.ts.index_values(rtype, resource)):
            if rows:
                self.conn.execute(_INSERT_INDEX[table.name], rows)
