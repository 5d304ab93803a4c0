"""Rewriting the search index of resources already stored: after an upgrade adds search
parameters (or changes how one is extracted), resources written before it have no rows for
them, and a search on them does not find those resources until they are written again.

``reindex`` reads each current resource of the tenant (of the types asked) in primary-key order,
in batches, and replaces its index rows with what the store's own indexer makes of its stored
content, one transaction per batch: a resource is never seen half indexed, and a search meanwhile
finds every resource by its old rows or its new ones. The derived rows (``Claim.outstanding``)
are computed again at the end. Content, versions and history are not touched.
"""
from __future__ import annotations

from collections.abc import Iterable

import orjson
import sqlalchemy as sa

from app.fhir.search_sql import DATE, NUMBER, REF, R, STRING, TOKEN
from app.fhir.store import derived
from app.fhir.store.tenant import TenantStore

BATCH = 1000
_TABLES = {"tokens": (TOKEN, ("param", "system", "code")), "strings": (STRING, ("param", "value", "exact")),
           "dates": (DATE, ("param", "start", "end")), "references": (REF, ("param", "target_type", "target_id")),
           "numbers": (NUMBER, ("param", "value"))}


def reindex(ts: TenantStore, types: Iterable[str] | None = None, *, batch: int = BATCH) -> dict[str, int]:
    """Index every current resource of ``ts``'s tenant (of ``types``; None: every type) again;
    returns how many of each type."""
    wanted = sorted(set(types)) if types is not None else None
    counts: dict[str, int] = {}
    after = 0
    while True:
        with ts.unit() as unit:
            where = [R.c.tenant_id == ts.tenant_id, R.c.deleted.is_(False), R.c.pk > after]
            if wanted is not None:
                where.append(R.c.type.in_(wanted))
            rows = unit.conn.execute(sa.select(R.c.pk, R.c.type, R.c.content).where(*where)
                                     .order_by(R.c.pk).limit(batch)).all()
            if not rows:
                break
            pks = [r.pk for r in rows]
            for table, _ in _TABLES.values():
                unit.conn.execute(table.delete().where(table.c.res_pk.in_(pks)))
            inserts: dict[str, list[dict[str, object]]] = {kind: [] for kind in _TABLES}
            for pk, rtype, content in rows:
                values = ts.index_values(rtype, orjson.loads(content))
                common = {"tenant_id": ts.tenant_id, "type": rtype, "res_pk": pk}
                for kind, (_, columns) in _TABLES.items():
                    inserts[kind] += [dict(common, **dict(zip(columns, row))) for row in getattr(values, kind)]
                counts[rtype] = counts.get(rtype, 0) + 1
            for kind, (table, _) in _TABLES.items():
                if inserts[kind]:
                    unit.conn.execute(table.insert(), inserts[kind])
            after = pks[-1]
    plan = derived.plan(ts.store.registry)
    with ts.unit() as unit:
        for rtype, params in plan.own.items():
            if wanted is None or rtype in wanted or any(d.source in wanted for d in params):
                for d in params:
                    derived.refresh(unit.conn, ts.tenant_id, d, None)
    return counts
