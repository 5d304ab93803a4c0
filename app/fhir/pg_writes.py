"""One round trip per resource write on PostgreSQL.

A write touches seven tables (current row, history row, four search-index tables, and the
write's AuditEvent row when the caller audits). Sent one by one that is seven to eleven round
trips, and on PostgreSQL each costs more than the work it carries (the audit row alone, sent on
its own, cost a fifth of the create throughput).
Data-modifying CTEs let one statement do all of it: every part sees the same snapshot, so
the DELETEs of a replaced version's index rows cannot touch the rows the same statement
inserts, and when the compare-and-set UPDATE matches nothing (a concurrent writer won) none of
the dependent parts writes anything either. Index values travel as parallel arrays.

SQLite keeps the statement-per-table path in ``store.py``: its round trips are function calls.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from app.fhir.extract import IndexValues

_HISTORY = """
h AS (INSERT INTO resource_history (tenant_id, type, id, version_id, last_updated, method, deleted, content)
      SELECT %(t)s, %(ty)s, %(id)s, %(v)s, %(now)s, %(m)s, false, r.content FROM r)"""

_INDEX = """,
it AS (INSERT INTO search_token (tenant_id, type, res_pk, param, system, code)
       SELECT %(t)s, %(ty)s, r.pk, x.p, x.s, x.c
       FROM r, unnest(%(tp)s::text[], %(ts)s::text[], %(tc)s::text[]) AS x(p, s, c)),
ist AS (INSERT INTO search_string (tenant_id, type, res_pk, param, value, exact)
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.v, x.e
        FROM r, unnest(%(sp)s::text[], %(sv)s::text[], %(se)s::text[]) AS x(p, v, e)),
idt AS (INSERT INTO search_date (tenant_id, type, res_pk, param, start, "end")
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.s, x.e
        FROM r, unnest(%(dp)s::text[], %(ds)s::timestamptz[], %(de)s::timestamptz[]) AS x(p, s, e)),
irf AS (INSERT INTO search_reference (tenant_id, type, res_pk, param, target_type, target_id)
        SELECT %(t)s, %(ty)s, r.pk, x.p, x.tt, x.ti
        FROM r, unnest(%(rp)s::text[], %(rt)s::text[], %(ri)s::text[]) AS x(p, tt, ti))"""

# The write's AuditEvent row, in the same statement: inserted only when the write happened.
_AUDIT = """,
au AS (INSERT INTO audit_event (tenant_id, recorded, content, action, outcome, entity, patient, agent)
       SELECT %(a_t)s, %(a_rec)s, %(a_c)s::jsonb, %(a_act)s, %(a_out)s, %(a_ent)s, %(a_pat)s, %(a_ag)s FROM r)"""

_END = """
SELECT pk FROM r"""

_CLEAR = """,
dt AS (DELETE FROM search_token WHERE res_pk IN (SELECT pk FROM r)),
dst AS (DELETE FROM search_string WHERE res_pk IN (SELECT pk FROM r)),
ddt AS (DELETE FROM search_date WHERE res_pk IN (SELECT pk FROM r)),
drf AS (DELETE FROM search_reference WHERE res_pk IN (SELECT pk FROM r))"""

_NEW_ROW = """WITH r AS (
  INSERT INTO resource (tenant_id, type, id, version_id, last_updated, deleted, content)
  VALUES (%(t)s, %(ty)s, %(id)s, %(v)s, %(now)s, false, %(c)s::jsonb)
  {conflict} RETURNING pk, content),"""

_REPLACE_ROW = """WITH r AS (
  UPDATE resource SET version_id = %(v)s, last_updated = %(now)s, deleted = false, content = %(c)s::jsonb
  WHERE tenant_id = %(t)s AND type = %(ty)s AND id = %(id)s AND version_id = %(prev)s
  RETURNING pk, content),"""
_WRITES = {
    "insert": _NEW_ROW.format(conflict="") + _HISTORY + _INDEX,
    "insert_if_absent": _NEW_ROW.format(conflict="ON CONFLICT (tenant_id, type, id) DO NOTHING") + _HISTORY + _INDEX,
    "replace": _REPLACE_ROW + _HISTORY + _CLEAR + _INDEX,
}
#: (kind, with the audit row) -> the statement
STATEMENTS = {(kind, audited): sql + (_AUDIT if audited else "") + _END
              for kind, sql in _WRITES.items() for audited in (False, True)}


_AUDIT_COLUMNS = {"t": "tenant_id", "rec": "recorded", "c": "content", "act": "action", "out": "outcome",
                  "ent": "entity", "pat": "patient", "ag": "agent"}


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]


def write(conn: Connection, kind: str, *, tenant_id: str, rtype: str, rid: str, version_id: int, now: datetime,
          method: str, content: str, index: IndexValues, previous_version: int | None = None,
          audit: dict[str, Any] | None = None) -> int | None:
    """Run the ``kind`` statement (``insert``, ``insert_if_absent``, ``replace``), with ``audit``
    (an audit_event row) when given; the resource row's pk, or None when nothing was written (the
    row already existed for ``insert_if_absent``, or the version moved on for ``replace``)."""
    tp, ts, tc = _columns(index.tokens, 3)
    sp, sv, se = _columns(index.strings, 3)
    dp, ds, de = _columns(index.dates, 3)
    rp, rt, ri = _columns(index.references, 3)
    params = {"t": tenant_id, "ty": rtype, "id": rid, "v": version_id, "now": now, "m": method, "c": content,
              "prev": previous_version, "tp": tp, "ts": ts, "tc": tc, "sp": sp, "sv": sv, "se": se,
              "dp": dp, "ds": ds, "de": de, "rp": rp, "rt": rt, "ri": ri}
    if audit is not None:
        params.update({f"a_{short}": audit[column] for short, column in _AUDIT_COLUMNS.items()})
    row = conn.exec_driver_sql(STATEMENTS[(kind, audit is not None)], params).first()
    return None if row is None else int(row[0])
