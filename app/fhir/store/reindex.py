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
from typing import Any

import orjson
import sqlalchemy as sa

from app.fhir.search_sql import R
from app.fhir.store import derived
from app.fhir.store.tenant import TenantStore
from app.fhir.store.unit import INDEX_TABLES, index_rows

BATCH = 1000


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
            for table in INDEX_TABLES:
                unit.conn.execute(table.delete().where(table.c.res_pk.in_(pks)))
            inserts: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in INDEX_TABLES}
            for pk, rtype, content in rows:
                for table, made in index_rows(ts.tenant_id, rtype, pk, ts.index_values(rtype, orjson.loads(content))):
                    inserts[table] += made
                counts[rtype] = counts.get(rtype, 0) + 1
            for table, made in inserts.items():
                if made:
                    unit.conn.execute(table.insert(), made)
            after = pks[-1]
    plan = derived.plan(ts.store.registry)
    with ts.unit() as unit:
        for rtype, params in plan.own.items():
            if wanted is None or rtype in wanted or any(d.source in wanted for d in params):
                for d in params:
                    derived.refresh(unit.conn, ts.tenant_id, d, None)
    return counts
