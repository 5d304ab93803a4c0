"""Reads on an open connection: by id, many at once, history and search (with includes)."""
from __future__ import annotations

from dataclasses import astuple
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.db import ResourceHistoryRow
from app.fhir.access import conditions
from app.fhir.errors import FhirError, Gone, NotFound
from app.fhir.paging import Position, history_binding, search_binding
from app.fhir.search_params import SearchQuery, parse_search
from app.fhir.search_sql import (
    REF, R, TOKEN, from_cursor_value, keyset_condition, query_conditions, sort_plan, to_cursor_value,
)
from app.fhir.store.pg_writes import array_literal
from app.fhir.store.types import SearchResult, Version, in_key_order

if TYPE_CHECKING:
    from app.fhir.store.tenant import TenantStore

H = ResourceHistoryRow.__table__


_READ = (
    sa.select(R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content)
    .where(R.c.tenant_id == sa.bindparam("t"), R.c.type == sa.bindparam("ty"), R.c.id == sa.bindparam("i"))
)


# ``current_many``'s statement, built once: (type, id) pairs as one expanding parameter.
_READ_MANY = (
    sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content)
    .where(R.c.tenant_id == sa.bindparam("t"), sa.tuple_(R.c.type, R.c.id).in_(sa.bindparam("keys", expanding=True)))
)

# On PostgreSQL the keys travel as two arrays instead. An expanding list is new statement text
# for every length, which PostgreSQL parses and plans afresh each time and psycopg never
# prepares (a batch of a hundred claims' keys took longer to plan than to read); with arrays the
# text is one, prepared once per connection.
_READ_MANY_PG = sa.text(
    "SELECT r.type, r.id, r.version_id, r.last_updated, r.deleted, CAST(r.content AS TEXT) AS content "
    "FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[])) AS k(type, id) "
    "JOIN resource r ON r.tenant_id = :t AND r.type = k.type AND r.id = k.id")

# ``Reader.referencing``'s statement on PostgreSQL, for any number of links (as ``_READ_MANY_PG``):
# the index lookups first, then the rows by primary key (see ``_referencing``).
_REFERENCING_PG = sa.text(
    "SELECT r.type, r.id, r.version_id, r.last_updated, CAST(r.content AS TEXT) AS content FROM resource r "
    "WHERE r.tenant_id = :t AND r.deleted IS false AND r.pk = ANY(ARRAY("
    "SELECT x.res_pk FROM unnest(CAST(:sources AS text[]), CAST(:params AS text[]), CAST(:ttypes AS text[]), "
    "CAST(:tids AS text[])) AS k(source, param, ttype, tid) "
    "JOIN search_reference x ON x.tenant_id = :t AND x.type = k.source AND x.param = k.param "
    "AND x.target_type = k.ttype AND x.target_id = k.tid)) ORDER BY r.pk")


@lru_cache(maxsize=32)
def _referencing(n: int) -> sa.Select:
    """``Reader.referencing``'s statement for ``n`` links on SQLite, built once (building it
    per call cost more than running it). One exact index lookup per link (UNION ALL) rather
    than an OR the planner must untangle. On PostgreSQL (``_REFERENCING_PG``) the lookups run
    first and the rows are then fetched by primary key, where a semi-join lets a stale row
    estimate pick a scan of the tenant's rows."""
    lookups = sa.union_all(*(sa.select(REF.c.res_pk).where(
        REF.c.tenant_id == sa.bindparam("t"), REF.c.type == sa.bindparam(f"s{i}"),
        REF.c.param == sa.bindparam(f"p{i}"), REF.c.target_id == sa.bindparam(f"i{i}"),
        REF.c.target_type == sa.bindparam(f"y{i}")) for i in range(n)))
    return (sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
            .where(R.c.tenant_id == sa.bindparam("t"), R.c.deleted.is_(False), R.c.pk.in_(lookups)).order_by(R.c.pk))


@lru_cache(maxsize=2)
def _by_token(postgres: bool) -> sa.Select:
    """``Reader.by_token``'s statement, built once: the token lookups first, then the rows by
    primary key, as ``_referencing`` does and for the same reason (a stale row estimate made
    the semi-join of the general search scan every claim once per lookup)."""
    lookups = sa.select(TOKEN.c.res_pk).where(
        TOKEN.c.tenant_id == sa.bindparam("t"), TOKEN.c.type == sa.bindparam("ty"), TOKEN.c.param == sa.bindparam("p"),
        TOKEN.c.code.in_(sa.bindparam("codes", expanding=True)))
    match = R.c.pk == sa.any_(sa.func.array(lookups.scalar_subquery())) if postgres else R.c.pk.in_(lookups)
    return (sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
            .where(R.c.tenant_id == sa.bindparam("t"), R.c.type == sa.bindparam("ty"), R.c.deleted.is_(False), match)
            .order_by(R.c.pk))


@lru_cache(maxsize=2)
def _by_reference(postgres: bool) -> sa.Select:
    """``Reader.by_reference``'s statement, built once, planned as ``_by_token``'s."""
    lookups = sa.select(REF.c.res_pk).where(
        REF.c.tenant_id == sa.bindparam("t"), REF.c.type == sa.bindparam("ty"), REF.c.param == sa.bindparam("p"),
        REF.c.target_id.in_(sa.bindparam("ids", expanding=True)), REF.c.target_type == sa.bindparam("tt"))
    match = R.c.pk == sa.any_(sa.func.array(lookups.scalar_subquery())) if postgres else R.c.pk.in_(lookups)
    return (sa.select(R.c.type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
            .where(R.c.tenant_id == sa.bindparam("t"), R.c.type == sa.bindparam("ty"), R.c.deleted.is_(False), match)
            .order_by(R.c.pk))


class Reader:
    """Read operations on an open connection (shared by TenantStore and Unit)."""

    def __init__(self, ts: TenantStore, conn: Connection) -> None:
        self.ts = ts
        self.conn = conn
        self.tenant_id = ts.tenant_id
        self.postgres = ts.store.postgres

    def settle(self) -> None:
        """Bring the derived rows up to date before a search reads them (a ``Unit`` defers them)."""

    def _content(self, text: str | None) -> str | None:
        return in_key_order(text) if (text and self.postgres) else text

    def _live(self, v: Version) -> Version:
        """A stored current version as reads return it (not deleted, content in key order)."""
        return Version(v.type, v.id, v.version_id, v.last_updated, False, self._content(v.content))

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
        if self.postgres and wanted:
            rows = self.conn.execute(_READ_MANY_PG, {"t": self.tenant_id, "types": array_literal([k[0] for k in wanted]),
                                                     "ids": array_literal([k[1] for k in wanted])}).all()
            return {(r.type, r.id): Version(r.type, r.id, r.version_id, r.last_updated, r.deleted, r.content)
                    for r in rows}
        for start in range(0, len(wanted), 500):
            rows = self.conn.execute(_READ_MANY, {"t": self.tenant_id, "keys": wanted[start:start + 500]}).all()
            for r in rows:
                out[(r.type, r.id)] = Version(r.type, r.id, r.version_id, r.last_updated, r.deleted, r.content)
        return out

    def by_token(self, rtype: str, param: str, codes: list[str]) -> list[Version]:
        """The current ``rtype`` resources with any of ``codes`` as the code of token parameter
        ``param`` (any system): an answer's control numbers to its claims, two index lookups
        whatever the planner's statistics say. Like ``current_many``, no access filter: for
        the server's own work."""
        if not codes:
            return []
        rows = self.conn.execute(_by_token(self.postgres), {"t": self.tenant_id, "ty": rtype, "p": param,
                                                            "codes": sorted(set(codes))}).all()
        return [Version(r.type, r.id, r.version_id, r.last_updated, False, self._content(r.content)) for r in rows]

    def by_reference(self, rtype: str, param: str, target_type: str, ids: list[str]) -> list[Version] | None:
        """The current ``rtype`` resources whose reference parameter ``param`` points at any of
        the ``target_type`` resources ``ids`` (an 835's patients to their Coverages, its claims
        to their Tasks): two index lookups in one statement, where the general search with a
        hundred OR-ed values was planned and converted afresh each time. None when the
        caller's access to ``rtype`` is filtered (then search, which applies it)."""
        if not self.ts.access("s", rtype).unrestricted:
            return None
        if not ids:
            return []
        rows = self.conn.execute(_by_reference(self.postgres), {"t": self.tenant_id, "ty": rtype, "p": param,
                                                                "tt": target_type, "ids": sorted(set(ids))}).all()
        return [Version(r.type, r.id, r.version_id, r.last_updated, False, self._content(r.content)) for r in rows]

    def referencing(self, links: list[tuple[str, str, str, str]]) -> list[Version] | None:
        """Live resources whose search parameter points at a target, for several
        (source type, parameter, target type, target id) at once: what a series of
        ``Source?param=Target/id`` searches finds, in one statement. None when the caller's
        access is filtered for any of the source types (then run the searches, which apply it)."""
        if any(not self.ts.access("s", source).unrestricted for source, _, _, _ in links):
            return None
        if self.postgres:
            sources, params, ttypes, tids = zip(*links) if links else ((), (), (), ())
            rows = self.conn.execute(_REFERENCING_PG, {
                "t": self.tenant_id, "sources": array_literal(sources), "params": array_literal(params),
                "ttypes": array_literal(ttypes), "tids": array_literal(tids)}).all()
            return [Version(r.type, r.id, r.version_id, r.last_updated, False, r.content) for r in rows]
        named: dict[str, str] = {"t": self.tenant_id}
        for n, (source, param, ttype, tid) in enumerate(links):
            named.update({f"s{n}": source, f"p{n}": param, f"y{n}": ttype, f"i{n}": tid})
        rows = self.conn.execute(_referencing(len(links)), named).all()
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
        return self._live(v)

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
        self.settle()
        rows = self.conn.execute(
            sa.select(R.c.id).where(*query_conditions(self.tenant_id, query), *access).limit(limit)
        ).all()
        return [r.id for r in rows]

    def search(self, query: SearchQuery) -> SearchResult:
        self.settle()
        conds = query_conditions(self.tenant_id, query) + conditions(
            self.ts.access("s", query.resource_type), self.tenant_id, query.resource_type, self.ts.store.registry)
        total = None
        if query.total != "none" or query.summary_count:
            total = self.conn.execute(sa.select(sa.func.count()).select_from(R).where(*conds)).scalar_one()
        if query.summary_count or query.count == 0:
            return SearchResult([], [], total)

        expr, desc, kind, source = sort_plan(query, self.tenant_id)
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
            .select_from(source).where(*conds).order_by(*order).limit(query.count + 1)
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
                out.append(self._live(v))
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
