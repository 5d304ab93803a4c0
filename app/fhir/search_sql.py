"""Compile a :class:`SearchQuery` into SQL conditions on the ``resource`` table.

Each clause becomes ``resource.pk IN (SELECT res_pk FROM search_<type> WHERE ...)`` with its
values OR-ed; clauses are AND-ed. Date comparisons follow the interval semantics of R4
search.html §3.1.1.5.7: a stored interval [s, e] against a query interval [qs, qe].
"""
from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.db import ResourceRow, SearchDate, SearchNumber, SearchReference, SearchString, SearchToken
from app.fhir.dates import MAX, MIN
from app.fhir.extract import NUMBER_SCALE
from app.fhir.search_params import (
    Clause, DateValue, MissingValue, NumberValue, ReferenceValue, SearchQuery, StringValue, TokenValue,
)

R = ResourceRow.__table__
TOKEN = SearchToken.__table__
STRING = SearchString.__table__
DATE = SearchDate.__table__
REF = SearchReference.__table__
NUMBER = SearchNumber.__table__
INDEX_TABLES = {"token": TOKEN, "string": STRING, "date": DATE, "reference": REF, "number": NUMBER}
# Sort keys of resources without a value, so that they come last in either direction.
_LAST_NUMBER, _FIRST_NUMBER = 2**62, -(2**62)
_LAST_TEXT, _FIRST_TEXT = "\U0010ffff", ""


def date_condition(start: ColumnElement, end: ColumnElement, v: DateValue) -> ColumnElement:
    qs, qe = v.start, v.end
    within = sa.and_(start >= qs, end <= qe)
    return {
        "eq": within,
        "ne": sa.not_(within),
        "gt": end > qe,
        "lt": start < qs,
        "ge": sa.or_(end > qe, within),
        "le": sa.or_(start < qs, within),
        "sa": start > qe,
        "eb": end < qs,
        "ap": sa.and_(start <= qe, end >= qs),
    }[v.prefix]


def _floor(value: Decimal) -> int:
    return math.floor(value * NUMBER_SCALE)


def _ceil(value: Decimal) -> int:
    return math.ceil(value * NUMBER_SCALE)


def number_condition(col: ColumnElement, v: NumberValue) -> ColumnElement:
    """``col`` (whole ten-thousandths) against a number value: ``eq``/``ne`` within the value's
    implied precision, the order prefixes exactly, ``ap`` within 10% (R4 search.html §3.1.1.5.1).
    The bounds are whole units, so an index on the column serves them."""
    x, h = v.value, v.half_unit
    within = sa.and_(col >= _ceil(x - h), col < _ceil(x + h))
    spread = abs(x) / 10
    return {
        "eq": within,
        "ne": sa.not_(within),
        "gt": col > _floor(x), "sa": col > _floor(x),
        "lt": col < _ceil(x), "eb": col < _ceil(x),
        "ge": col >= _ceil(x),
        "le": col <= _floor(x),
        "ap": sa.and_(col >= _ceil(x - spread), col <= _floor(x + spread)),
    }[v.prefix]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_condition(table: sa.Table, clause: Clause, v: object) -> ColumnElement:
    if isinstance(v, TokenValue):
        conds = []
        if v.code is not None:
            conds.append(table.c.code == v.code)
        if v.system_given:
            conds.append(table.c.system == v.system if v.system is not None else table.c.system.is_(None))
        return sa.and_(*conds) if conds else sa.true()
    if isinstance(v, StringValue):
        if clause.modifier == "exact":
            return table.c.exact == v.raw
        if clause.modifier == "contains":
            return table.c.value.like("%" + _like_escape(v.folded) + "%", escape="\\")
        return table.c.value.like(_like_escape(v.folded) + "%", escape="\\")
    if isinstance(v, DateValue):
        return date_condition(table.c.start, table.c.end, v)
    if isinstance(v, ReferenceValue):
        cond = table.c.target_id == v.id
        return sa.and_(table.c.target_type == v.type, cond) if v.type else cond
    if isinstance(v, NumberValue):
        return number_condition(table.c.value, v)
    raise TypeError(f"unexpected search value {v!r}")


def clause_condition(tenant_id: str, rtype: str, clause: Clause) -> ColumnElement:
    if clause.param == "_id":
        if isinstance(clause.values[0], MissingValue):
            return sa.true() if not clause.values[0].missing else sa.false()
        return R.c.id.in_([v.code for v in clause.values if isinstance(v, TokenValue)])
    if clause.param == "_lastUpdated":
        if isinstance(clause.values[0], MissingValue):
            return sa.true() if not clause.values[0].missing else sa.false()
        return sa.or_(*(date_condition(R.c.last_updated, R.c.last_updated, v)
                        for v in clause.values if isinstance(v, DateValue)))
    table = INDEX_TABLES[clause.type]
    base = [table.c.tenant_id == tenant_id, table.c.type == rtype, table.c.param == clause.param]
    if clause.modifier == "missing":
        present = R.c.pk.in_(sa.select(table.c.res_pk).where(*base))
        return sa.not_(present) if clause.values[0].missing else present  # type: ignore[union-attr]
    values = sa.or_(*_values_conditions(table, clause))
    return R.c.pk.in_(sa.select(table.c.res_pk).where(*base, values))


def _values_conditions(table: sa.Table, clause: Clause) -> list[ColumnElement]:
    """One condition per value, except that codes given without a system (``identifier=a,b,c``)
    become one ``code IN (...)``: an index condition the planner can use, where an OR of
    equalities is a filter over every row of the parameter."""
    bare = [v.code for v in clause.values
            if isinstance(v, TokenValue) and v.code is not None and not v.system_given]
    rest = [_value_condition(table, clause, v) for v in clause.values
            if not (isinstance(v, TokenValue) and v.code is not None and not v.system_given)]
    if len(bare) > 1:
        return [table.c.code.in_(bare), *rest]
    return [*(table.c.code == code for code in bare), *rest]


def query_conditions(tenant_id: str, query: SearchQuery) -> list[ColumnElement]:
    conds: list[ColumnElement] = [R.c.tenant_id == tenant_id, R.c.type == query.resource_type,
                                  R.c.deleted.is_(False)]
    conds.extend(clause_condition(tenant_id, query.resource_type, c) for c in query.clauses)
    return conds


def sort_plan(query: SearchQuery, tenant_id: str) -> tuple[ColumnElement | None, bool, str, sa.FromClause]:
    """(expression, descending, kind) for the sort key (``None``: creation order, pk) and what the
    search selects from: the resources, joined to their sort values for a number, token or
    reference key over the whole type. Those come from one grouped pass over the parameter's
    index rows: sorting 100,000 claims by a lookup per row (as date keys still are) cost about a
    second on PostgreSQL, the pass about half."""
    if query.sort is None:
        return None, False, "pk", R
    name, desc = query.sort
    if name == "_lastUpdated":
        return R.c.last_updated, desc, "datetime", R
    if name == "_id":
        return R.c.id, desc, "str", R
    param = query.sort_param
    if param is None or param.type == "date":
        first = (
            sa.select(sa.func.min(DATE.c.start))
            .where(DATE.c.res_pk == R.c.pk, DATE.c.param == name)
            .scalar_subquery()
        )
        # Resources without the date sort last in either direction.
        return sa.func.coalesce(first, MIN if desc else MAX), desc, "datetime", R
    table, column = {"number": (NUMBER, NUMBER.c.value), "token": (TOKEN, TOKEN.c.code)}.get(
        param.type, (REF, REF.c.target_id))
    last = (_FIRST_NUMBER if desc else _LAST_NUMBER) if param.type == "number" else (_FIRST_TEXT if desc else _LAST_TEXT)
    kind = "int" if param.type == "number" else "str"
    if any(c.type in ("token", "reference", "string") for c in query.clauses):
        # A token, reference or string filter narrows the rows: a lookup per row is cheap then,
        # and a grouped pass joined to few rows is what PostgreSQL's planner may loop over.
        value = (sa.select(sa.func.min(column)).where(table.c.res_pk == R.c.pk, table.c.param == name)
                 .scalar_subquery())
        return sa.func.coalesce(value, last), desc, kind, R
    values = (sa.select(table.c.res_pk, sa.func.min(column).label("v"))
              .where(table.c.tenant_id == tenant_id, table.c.type == query.resource_type, table.c.param == name)
              .group_by(table.c.res_pk).subquery("sort_values"))
    return sa.func.coalesce(values.c.v, last), desc, kind, R.outerjoin(values, values.c.res_pk == R.c.pk)


def keyset_condition(expr: ColumnElement | None, desc: bool, after: tuple[object, int]) -> ColumnElement:
    """Rows strictly after ``after`` = (sort value, pk) in the order (expr, pk)."""
    value, pk = after
    if expr is None:
        return R.c.pk < pk if desc else R.c.pk > pk
    if desc:
        return sa.or_(expr < value, sa.and_(expr == value, R.c.pk < pk))
    return sa.or_(expr > value, sa.and_(expr == value, R.c.pk > pk))


def to_cursor_value(kind: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def from_cursor_value(kind: str, text: str | None) -> object:
    if text is None or kind == "pk":
        return None
    if kind == "datetime":
        dt = datetime.fromisoformat(text)
        return dt
    if kind == "int":
        return int(text)
    return text
