"""Single-row reads by identity: the API's hottest path, on a raw DB-API cursor."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.db import is_postgres
from app.fhir.dates import UTC
from app.fhir.store.async_pg import AsyncPostgres


class RowReader:
    """Single-row reads by identity on a raw DB-API cursor.

    This is the hottest path of the API (design target: reads at half the framework ceiling),
    and SQLAlchemy's per-execute machinery costs more than the query itself; the SQL is fixed,
    so it is written once per dialect here. PostgreSQL reads run on an autocommit pool, so a
    read is one round trip. The API's read route awaits ``aget``, which on PostgreSQL leaves
    the event loop free during that round trip (see ``async_pg``: a few connections, so
    requests do not queue behind a busy loop); ``get`` serves synchronous callers.
    """

    def __init__(self, engine: Engine, async_pg: AsyncPostgres | None = None) -> None:
        self.postgres = is_postgres(engine)
        self.async_pg = async_pg
        if self.postgres:
            # Autocommit connections hold no transaction, so returning one to the pool needs no
            # ROLLBACK round trip.
            self.engine = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=10,
                                           max_overflow=20, pool_recycle=1800, pool_reset_on_return=None)
            self.sql = ("SELECT version_id, last_updated, deleted, content::text FROM resource "
                        "WHERE tenant_id = %s AND type = %s AND id = %s")
            self.async_sql = ("SELECT version_id, last_updated, deleted, content::text FROM resource "
                              "WHERE tenant_id = $1 AND type = $2 AND id = $3")  # asyncpg's placeholders
        else:
            self.engine = engine
            self.sql = ("SELECT version_id, last_updated, deleted, content FROM resource "
                        "WHERE tenant_id = ? AND type = ? AND id = ?")

    def get(self, tenant_id: str, rtype: str, rid: str) -> tuple[int, datetime, bool, str] | None:
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute(self.sql, (tenant_id, rtype, rid))
            row = cur.fetchone()
            cur.close()
        finally:
            conn.close()
        return self._row(row)

    async def aget(self, tenant_id: str, rtype: str, rid: str) -> tuple[int, datetime, bool, str] | None:
        """``get`` that, on PostgreSQL, leaves the event loop free during the round trip."""
        if self.async_pg is None:
            return self.get(tenant_id, rtype, rid)
        return self._row(await self.async_pg.fetchone(self.async_sql, (tenant_id, rtype, rid)))

    @staticmethod
    def _row(row: Any) -> tuple[int, datetime, bool, str] | None:
        if row is None:
            return None
        version_id, updated, deleted, content = row
        if isinstance(updated, str):  # SQLite stores UTC without an offset
            updated = datetime.fromisoformat(updated).replace(tzinfo=UTC)
        return version_id, updated, bool(deleted), content
