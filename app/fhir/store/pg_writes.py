"""One round trip per resource write on PostgreSQL.

A write touches up to nine tables (current row, history row, five search-index tables, the
write's AuditEvent row when the caller audits, and the jobs the write queues). Sent one by one
that is seven to twelve round trips, and on PostgreSQL each costs more than the work it carries
(the audit row alone, sent on its own, cost a fifth of the create throughput).
Data-modifying CTEs let one statement do all of it: every part sees the same snapshot, so
the DELETEs of a replaced version's index rows cannot touch the rows the same statement
inserts, and when the compare-and-set UPDATE matches nothing (a concurrent writer won) none of
the dependent parts writes anything either. Index values travel as parallel arrays.

A single statement is also a whole transaction when run outside one, which is what lets the
API's creates run it on asyncpg in autocommit mode (``arun``) without BEGIN and COMMIT round
trips. asyncpg infers each parameter's type from where it first appears, so the statements
cast every parameter whose column type is not text.

SQLite keeps the statement-per-table path in ``store.py``: its round trips are function calls.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Sequence

from sqlalchemy.engine import Connection

from app.fhir.store.async_pg import AsyncPostgres
from app.fhir.extract import IndexValues
from app.outbox import QueuedJob

_HISTORY = """
h AS (INSERT INTO resource_history (tenant_id, type, id, version_id, last_updated, method, deleted, content)
      SELECT %(t)s, %(ty)s, %(id)s, %(v)s::int, %(now)s::timestamptz, %(m)s, false, r.content FROM r)"""

_INDEX = """,
it AS (INSERT INTO search_token (tenant_id, type, res_pk, param, system, code)
       SELECT %(t)s, %(ty)s, r.pk, x.p, x.s, x.c
       FROM r, unnest(%(tp)s::text[], %(ts)s::text[], %(tc)s::text[]) AS x(p, s, c)),
ist AS (INSERT INTO search_string (tenant_id, type, res_pk, param, value, exact)
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.v, x.e
        FROM r, unnest(%(sp)s::text[], %(sv)s::text[], %(se)s::text[]) AS x(p, v, e)),
idt AS (INSERT INTO search_date (tenant_id, type, res_pk, param, start, "end")
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.s, x.e
        FROM r, unnest(%(dp)s::text[], %(ds)s::text[]::timestamptz[], %(de)s::text[]::timestamptz[]) AS x(p, s, e)),
irf AS (INSERT INTO search_reference (tenant_id, type, res_pk, param, target_type, target_id)
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.tt, x.ti
        FROM r, unnest(%(rp)s::text[], %(rt)s::text[], %(ri)s::text[]) AS x(p, tt, ti)),
inu AS (INSERT INTO search_number (tenant_id, type, res_pk, param, value)
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.v
        FROM r, unnest(%(np)s::text[], %(nv)s::bigint[]) AS x(p, v))"""

# The write's AuditEvent row, in the same statement: inserted only when the write happened.
_AUDIT = """,
au AS (INSERT INTO audit_event (tenant_id, recorded, content, action, outcome, entity, patient, agent)
       SELECT %(a_t)s, %(a_rec)s::timestamptz, %(a_c)s::jsonb, %(a_act)s, %(a_out)s, %(a_ent)s, %(a_pat)s,
              %(a_ag)s FROM r)"""

# The jobs the write queues (app.outbox), likewise only when the write happened.
_JOBS = """,
jb AS (INSERT INTO job (tenant_id, kind, dedupe_key, payload, status, attempts, run_after, created_at, updated_at)
       SELECT %(t)s, x.k, x.d, x.p, 'queued', 0, COALESCE(x.r, %(now)s::timestamptz), %(now)s::timestamptz,
              %(now)s::timestamptz
       FROM r, unnest(%(jk)s::text[], %(jd)s::text[], %(jp)s::text[], %(jr)s::text[]::timestamptz[]) AS x(k, d, p, r)
       ON CONFLICT (tenant_id, dedupe_key) DO NOTHING)"""

_END = """
SELECT pk FROM r"""

_CLEAR = """,
dt AS (DELETE FROM search_token WHERE res_pk IN (SELECT pk FROM r)),
dst AS (DELETE FROM search_string WHERE res_pk IN (SELECT pk FROM r)),
ddt AS (DELETE FROM search_date WHERE res_pk IN (SELECT pk FROM r)),
drf AS (DELETE FROM search_reference WHERE res_pk IN (SELECT pk FROM r)),
dnu AS (DELETE FROM search_number WHERE res_pk IN (SELECT pk FROM r) AND NOT (param = ANY(%(keep)s::text[])))"""

# A replace that rewrites the rows of some parameters only (``only``: those whose elements changed).
_CLEAR_SOME = """,
dt AS (DELETE FROM search_token WHERE res_pk IN (SELECT pk FROM r) AND param = ANY(%(only)s::text[])),
dst AS (DELETE FROM search_string WHERE res_pk IN (SELECT pk FROM r) AND param = ANY(%(only)s::text[])),
ddt AS (DELETE FROM search_date WHERE res_pk IN (SELECT pk FROM r) AND param = ANY(%(only)s::text[])),
drf AS (DELETE FROM search_reference WHERE res_pk IN (SELECT pk FROM r) AND param = ANY(%(only)s::text[])),
dnu AS (DELETE FROM search_number WHERE res_pk IN (SELECT pk FROM r) AND param = ANY(%(only)s::text[])
        AND NOT (param = ANY(%(keep)s::text[])))"""

_NEW_ROW = """WITH r AS (
  INSERT INTO resource (tenant_id, type, id, version_id, last_updated, deleted, content)
  VALUES (%(t)s, %(ty)s, %(id)s, %(v)s::int, %(now)s::timestamptz, false, %(c)s::json)
  {conflict} RETURNING pk, content),"""

_REPLACE_ROW = """WITH r AS (
  UPDATE resource SET version_id = %(v)s::int, last_updated = %(now)s::timestamptz, deleted = false,
                      content = %(c)s::json
  WHERE tenant_id = %(t)s AND type = %(ty)s AND id = %(id)s AND version_id = %(prev)s::int
  RETURNING pk, content),"""
_WRITES = {
    "insert": _NEW_ROW.format(conflict="") + _HISTORY + _INDEX,
    "insert_if_absent": _NEW_ROW.format(conflict="ON CONFLICT (tenant_id, type, id) DO NOTHING") + _HISTORY + _INDEX,
    "replace": _REPLACE_ROW + _HISTORY + _CLEAR + _INDEX,
    "replace_some": _REPLACE_ROW + _HISTORY + _CLEAR_SOME + _INDEX,
}


@lru_cache(maxsize=None)
def statement(kind: str, audited: bool, queues: bool) -> str:
    """The ``kind`` statement, with the audit row and with the jobs part when asked (psycopg's
    ``%(name)s`` placeholders), its whitespace collapsed: psycopg converts a statement's
    placeholders on every execution unless it is at most 4 KiB long (then once), and shorter text
    is less to scan either way."""
    return " ".join((_WRITES[kind] + (_AUDIT if audited else "") + (_JOBS if queues else "") + _END).split())


@lru_cache(maxsize=None)
def numbered(kind: str, audited: bool, queues: bool) -> tuple[str, tuple[str, ...]]:
    """``statement`` with asyncpg's ``$n`` placeholders, and the parameter name of each ``n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, statement(kind, audited, queues)), tuple(names)


_AUDIT_COLUMNS = {"t": "tenant_id", "rec": "recorded", "c": "content", "act": "action", "out": "outcome",
                  "ent": "entity", "pat": "patient", "ag": "agent"}


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]


@dataclass(frozen=True)
class Write:
    """One resource write, ready to run on either driver."""

    kind: str  # insert | insert_if_absent | replace
    audited: bool
    queues: bool
    params: dict[str, Any]


def prepare(kind: str, *, tenant_id: str, rtype: str, rid: str, version_id: int, now: datetime, method: str,
            content: str, index: IndexValues, previous_version: int | None = None,
            audit: dict[str, Any] | None = None, jobs: Sequence[QueuedJob] = (),
            keep: Sequence[str] = (), only: frozenset[str] | None = None) -> Write:
    """The ``kind`` write (``insert``, ``insert_if_absent``, ``replace``), with ``audit`` (an
    audit_event row) and ``jobs`` written only if the resource row is. ``keep``: the derived
    number parameters whose rows a replace leaves (``derived``: the writer refreshes them when
    their base changed). ``only``: a replace rewrites the rows of these parameters alone (and
    ``index`` holds theirs alone)."""
    if kind == "replace" and only is not None:
        kind = "replace_some"
    tp, ts, tc = _columns(index.tokens, 3)
    sp, sv, se = _columns(index.strings, 3)
    # Dates travel as text: asyncpg would send datetime.max (an open period's end) as 'infinity'
    # where psycopg sends 9999-12-31, and the two drivers must store the same rows.
    dp, ds, de = _columns([(p, start.isoformat(), end.isoformat()) for p, start, end in index.dates], 3)
    rp, rt, ri = _columns(index.references, 3)
    np_, nv = _columns(index.numbers, 2)
    params = {"t": tenant_id, "ty": rtype, "id": rid, "v": version_id, "now": now, "m": method, "c": content,
              "prev": previous_version, "tp": tp, "ts": ts, "tc": tc, "sp": sp, "sv": sv, "se": se,
              "dp": dp, "ds": ds, "de": de, "rp": rp, "rt": rt, "ri": ri,
              "np": np_, "nv": nv, "keep": list(keep), "only": sorted(only or ())}
    if audit is not None:
        params.update({f"a_{short}": audit[column] for short, column in _AUDIT_COLUMNS.items()})
    if jobs:
        params.update({"jk": [j.kind for j in jobs], "jd": [j.dedupe_key for j in jobs],
                       "jp": [j.payload_text() for j in jobs],
                       "jr": [j.run_after.isoformat() if j.run_after else None for j in jobs]})
    return Write(kind, audit is not None, bool(jobs), params)


def array_literal(values: Sequence[Any]) -> str:
    """``values`` (strings, numbers, None) as a PostgreSQL array literal, every element quoted.
    psycopg's list dumper looks at every element to choose the array's type and tests each
    against a regular expression: a write sends eighteen arrays, and dumping them was a tenth
    of the CPU of posting a payer's answer; this is five times cheaper. The statements cast
    every array parameter, so the text arrives as the array it spells."""
    return "{" + ",".join("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def _literals(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for psycopg: its lists as array literals (asyncpg takes the lists as they are)."""
    return {k: array_literal(v) if isinstance(v, list) else v for k, v in params.items()}


# The writes run on generic plans. Left to choose, PostgreSQL plans each execution of a prepared
# write again: the planner sizes every ``unnest`` by its array when it sees the values and at
# a hundred rows when it does not, so the plan made for the values always looks cheaper and
# is made anew each time. For these statements every plan is the same (keyed lookups and
# inserts), and planning them was a sixth of PostgreSQL's CPU while claims were posted. The
# setting holds for the writes alone: it is set before them and restored after them in the
# same round trip, so no other statement of the transaction changes plan.
GENERIC_PLANS = "SET LOCAL plan_cache_mode = force_generic_plan"
DEFAULT_PLANS = "SET LOCAL plan_cache_mode TO DEFAULT"


def run(conn: Connection, write: Write) -> int | None:
    """Run ``write`` in ``conn``'s transaction: the resource row's pk, or None when nothing was
    written (the row already existed for ``insert_if_absent``, or the version moved on for
    ``replace``)."""
    return run_many(conn, [write])[0]


def run_many(conn: Connection, writes: Sequence[Write]) -> list[int | None]:
    """``run`` for many writes, sent in one pipeline (psycopg's pipeline mode): one round trip
    for all of them instead of one each. Each result as ``run``'s, in the order of ``writes``.
    The writes are independent (none reads what another of the batch writes) and go in the
    order of their resources' type and id, so that two batches over the same resources lock
    their rows in one order and cannot deadlock."""
    if not writes:
        return []
    raw = conn.connection.driver_connection
    order = sorted(range(len(writes)), key=lambda i: (writes[i].params["ty"], writes[i].params["id"]))
    cursors = {}
    with raw.pipeline():
        raw.execute(GENERIC_PLANS)
        for i in order:
            w = writes[i]
            cursors[i] = raw.cursor()
            # prepared from the first execution (psycopg waits for the fifth): each text is one
            # of a few, run over and over on every connection
            cursors[i].execute(statement(w.kind, w.audited, w.queues), _literals(w.params), prepare=True)
        raw.execute(DEFAULT_PLANS)
    out: list[int | None] = []
    for i in range(len(writes)):
        row = cursors[i].fetchone()
        out.append(None if row is None else int(row[0]))
        cursors[i].close()
    return out


async def arun(db: AsyncPostgres, write: Write) -> int | None:
    """``run`` as a transaction of its own, awaited on asyncpg."""
    sql, names = numbered(write.kind, write.audited, write.queues)
    row = await db.fetchone(sql, [write.params[name] for name in names])
    return None if row is None else int(row[0])
