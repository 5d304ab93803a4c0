"""The API's hottest statements on PostgreSQL, awaited in the event loop.

Reads by id and creates are each one statement, updates two (a read, then ``pg_writes``'
compare-and-set write); each write statement is a transaction by itself in autocommit mode. On PostgreSQL most of their time is the
round trip, and a blocking driver call holds the event loop (and every other request) for all
of it, or, from a worker thread, costs thread hand-offs under the GIL that cost more than the
statement. Here they are awaited on asyncpg, whose protocol is compiled and which prepares each
statement once per connection, so the loop serves other requests during the round trip.
Measured with 32 clients on 2 cores: reads went from 1,800/s blocking on psycopg (2,300/s
awaiting psycopg's async connection, whose Python-level protocol costs about 120 µs per
query) to 2,700/s on asyncpg; creates from 640/s in the thread pool to 1,980/s, updates from
610/s to 1,200/s.
SQLAlchemy's asyncio layer is not used: its greenlet bridge costs more than the query.
Connections belong to the event loop that made them, so each loop keeps its own few.
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

import asyncpg
from sqlalchemy.engine import URL

# Few connections serve best. With 32 clients on 2 cores: 2 gave 2,600 reads/s (p99 20 ms),
# 4 gave 2,750-3,050/s (p99 18-25 ms), 8 gave 2,700/s at a p99 of 89 ms: more sessions only
# queue in PostgreSQL, and the requests holding them wait behind the rest for the loop.
# Creates likewise: 2 gave 1,900/s (p99 21 ms), 4 gave 1,880/s (p99 25 ms), 8 gave 1,700/s
# (p99 112 ms); PostgreSQL's group commit shares a WAL flush among the few anyway.
POOL_SIZE = 4
# These connections run keyed reads and ``pg_writes``' statements only, whose plans never depend
# on the values: generic plans spare PostgreSQL planning the writes again at every execution
# (see ``pg_writes.GENERIC_PLANS``).
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


class LoopPool:
    """Up to ``size`` connections for one event loop, opened on demand."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.idle: list[asyncpg.Connection] = []
        self.slots = asyncio.Semaphore(size)

    async def fetchone(self, sql: str, params: Sequence[Any]) -> Sequence[Any] | None:
        async with self.slots:
            conn = self.idle.pop() if self.idle else await asyncpg.connect(self.dsn, server_settings=GENERIC_PLANS)
            try:
                row = await conn.fetchrow(sql, *params)
            except BaseException:
                conn.terminate()  # a connection in an unknown state (cancelled mid-query) is not reused
                raise
            self.idle.append(conn)
            return row

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()


class AsyncPostgres:
    """One ``LoopPool`` per running event loop (the server has one; tests make many)."""

    def __init__(self, url: URL, size: int = POOL_SIZE) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.size = size
        self.pools: dict[int, tuple[asyncio.AbstractEventLoop, LoopPool]] = {}

    def _pool(self) -> LoopPool:
        loop = asyncio.get_running_loop()
        entry = self.pools.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        for key in [k for k, (other, _) in self.pools.items() if other.is_closed()]:
            del self.pools[key]  # connections of a finished loop are garbage with it
        pool = LoopPool(self.dsn, self.size)
        self.pools[id(loop)] = (loop, pool)
        return pool

    async def fetchone(self, sql: str, params: Sequence[Any]) -> Sequence[Any] | None:
        """The first row of ``sql`` (placeholders ``$1``, ``$2``…), or None."""
        return await self._pool().fetchone(sql, params)

    async def close(self) -> None:
        """Close the running loop's connections (at server shutdown)."""
        entry = self.pools.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].close()
