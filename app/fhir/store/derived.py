"""Derived number parameters, kept current at write time.

A derived parameter (``SearchParam.derived``, e.g. ``Claim.outstanding``) is a resource's
``from`` value less the sum of a ``minus`` parameter over the resources whose ``via`` reference
points at it (the claim's billed amount less what its ExplanationOfBenefits settle). It is
stored as an ordinary number index row, so searching and sorting on it cost what any number
parameter costs. Every write of either side notes the rows of the resources it touches: the
resource itself when it has derived parameters, and the targets its ``via`` reference names
before and after the write when it is a ``minus`` source. The writing transaction recomputes
what its writes noted once, before it commits and before it searches (``Unit.settle``).

The recomputation reads the index rows other transactions committed. Two answers for one claim
written at once would each miss the other's on PostgreSQL (READ COMMITTED), so each takes a
transaction lock on the target first; the second then computes after the first committed.
SQLite writers are serialized already.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.db import ResourceRow, SearchNumber, SearchReference
from app.fhir.extract import number_units, numbers_of, walk
from app.fhir.registry import Registry

R = ResourceRow.__table__
NUMBER = SearchNumber.__table__
REF = SearchReference.__table__


@dataclass(frozen=True)
class Derived:
    """One derived parameter of ``target``: ``from_param`` less the sum of ``minus_param`` over
    the ``source`` resources whose ``via`` reference points at the target."""

    target: str
    param: str
    from_param: str
    source: str | None
    minus_param: str | None
    via: str | None


@dataclass(frozen=True)
class Plan:
    own: dict[str, tuple[Derived, ...]]  # target type -> its derived parameters
    fed_by: dict[str, tuple[Derived, ...]]  # source type -> the derived parameters it feeds


_PLANS: dict[int, tuple[Registry, Plan]] = {}


def plan(registry: Registry) -> Plan:
    """The registry's derived parameters, by the type that owns them and the type that feeds them."""
    cached = _PLANS.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    own: dict[str, list[Derived]] = {}
    fed_by: dict[str, list[Derived]] = {}
    for rtype in registry.types.values():
        for p in rtype.params.values():
            if not p.derived:
                continue
            minus = p.derived.get("minus") or {}
            d = Derived(rtype.name, p.name, p.derived["from"], minus.get("type"), minus.get("param"), minus.get("via"))
            own.setdefault(rtype.name, []).append(d)
            if d.source:
                fed_by.setdefault(d.source, []).append(d)
    made = Plan({k: tuple(v) for k, v in own.items()}, {k: tuple(v) for k, v in fed_by.items()})
    _PLANS[id(registry)] = (registry, made)
    return made


def own_params(registry: Registry, rtype: str) -> tuple[str, ...]:
    """The derived parameters of ``rtype``: a rewrite of its index leaves their rows in place."""
    return tuple(d.param for d in plan(registry).own.get(rtype, ()))


def base_unchanged(registry: Registry, d: Derived, new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether ``new`` and ``old`` have the same ``from`` values: then the derived row kept by the
    write is still right (what the sources subtract is refreshed by their own writes), and a
    claim moving through its lifecycle costs no recomputation."""
    param = registry.types[d.target].params[d.from_param]
    return _numbers(new, param.paths) == _numbers(old, param.paths)


def _numbers(resource: dict[str, Any], paths: Iterable[str]) -> list[int]:
    return sorted(number_units(n) for path in paths for v in walk(resource, path) for n in numbers_of(v))


def involves(registry: Registry, rtype: str) -> bool:
    """Whether writes of ``rtype`` recompute derived rows (they then need a transaction: the
    one-statement API writes are not for them)."""
    p = plan(registry)
    return rtype in p.own or rtype in p.fed_by


def refresh(conn: Connection, tenant_id: str, d: Derived, ids: Iterable[str] | None, *, fresh: bool = False) -> None:
    """Recompute ``d`` for the target resources ``ids`` (None: every one of the tenant);
    ``fresh``: they were created in this transaction, so no earlier row is there to delete."""
    params: dict[str, Any] = {"tenant": tenant_id}
    if ids is not None:
        params["ids"] = sorted(set(ids))
        if not params["ids"]:
            return
    delete, insert = _statements(d, ids is not None)
    if not fresh:
        conn.execute(delete, params)
    conn.execute(insert, params)


@lru_cache(maxsize=None)
def _statements(d: Derived, by_id: bool) -> tuple[sa.Delete, sa.Insert]:
    """The delete and the recomputing insert of ``d``, built once: every write of a claim runs
    them, and building and compiling them anew each time cost more than running them."""
    where = [R.c.tenant_id == sa.bindparam("tenant"), R.c.type == d.target, R.c.deleted.is_(False)]
    if by_id:
        where.append(R.c.id.in_(sa.bindparam("ids", expanding=True)))
    targets = sa.select(R.c.pk).where(*where)
    delete = NUMBER.delete().where(NUMBER.c.param == d.param, NUMBER.c.res_pk.in_(targets))
    base = NUMBER.alias("base")
    value: sa.ColumnElement = base.c.value
    if d.source and d.minus_param and d.via:
        minus = NUMBER.alias("minus")
        taken = (sa.select(sa.func.coalesce(sa.func.sum(minus.c.value), 0))
                 .select_from(REF.join(minus, minus.c.res_pk == REF.c.res_pk))
                 .where(REF.c.tenant_id == sa.bindparam("tenant"), REF.c.type == d.source, REF.c.param == d.via,
                        REF.c.target_type == d.target, REF.c.target_id == R.c.id, minus.c.param == d.minus_param)
                 .scalar_subquery())
        value = base.c.value - taken
    rows = (sa.select(R.c.tenant_id, R.c.type, R.c.pk, sa.literal(d.param), value)
            .select_from(R.join(base, sa.and_(base.c.res_pk == R.c.pk, base.c.param == d.from_param)))
            .where(*where))
    return delete, NUMBER.insert().from_select(["tenant_id", "type", "res_pk", "param", "value"], rows)
