"""Claims read straight from the store by their lifecycle code, in one query.

The sweeps and reports over a tenant's claims need every claim in some states, not a page of a
search: one select on the ``resource`` table, filtered through the ``lifecycle`` token index.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson
import sqlalchemy as sa

from app.db import ResourceRow, SearchToken
from app.fhir.store import Reader

R = ResourceRow.__table__
TOKEN = SearchToken.__table__


def claims_with_lifecycle(reader: Reader, codes: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Every current (not deleted) Claim of the reader's tenant whose lifecycle is one of ``codes``."""
    tenant = reader.tenant_id
    indexed = sa.select(TOKEN.c.res_pk).where(TOKEN.c.tenant_id == tenant, TOKEN.c.type == "Claim",
                                              TOKEN.c.param == "lifecycle", TOKEN.c.code.in_(sorted(codes)))
    rows = reader.conn.execute(sa.select(R.c.content).where(
        R.c.tenant_id == tenant, R.c.type == "Claim", R.c.deleted.is_(False), R.c.pk.in_(indexed)))
    for (content,) in rows:
        if content:
            yield orjson.loads(content)


def resources_of_type(reader: Reader, rtype: str) -> Iterator[dict[str, Any]]:
    """Every current resource of ``rtype`` of the reader's tenant (one query)."""
    rows = reader.conn.execute(sa.select(R.c.content).where(
        R.c.tenant_id == reader.tenant_id, R.c.type == rtype, R.c.deleted.is_(False)))
    for (content,) in rows:
        if content:
            yield orjson.loads(content)
