"""Reads by id awaited on PostgreSQL: the same answers as the synchronous path, from any event
loop (each keeps its own connections), with a broken connection never handed out again."""
from __future__ import annotations

import asyncio

import pytest

from tests.core.helpers import patient


def test_reads_by_id_match_the_synchronous_path_from_each_event_loop(app, store):
    rows = app.state.services.store.rows
    if rows.async_reads is None:
        pytest.skip("SQLite reads are in-process: nothing to await")
    created = store.create(patient(family="Loop")).version

    loops = []

    async def read_twice():
        loops.append(asyncio.get_running_loop())
        return [await store.aread("Patient", created.id) for _ in range(2)]

    first, second = asyncio.run(read_twice()), asyncio.run(read_twice())
    for v in first + second:
        assert (v.id, v.version_id, v.content) == (created.id, 1, store.read("Patient", created.id).content)
    kept = [loop for loop, _pool in rows.async_reads.pools.values()]
    assert loops[1] in kept and loops[0] not in kept  # the first loop's pool went with its loop
    assert asyncio.run(rows.aget(store.tenant_id, "Patient", "no-such-id")) is None


def test_a_failed_read_closes_its_connection(app):
    rows = app.state.services.store.rows
    if rows.async_reads is None:
        pytest.skip("SQLite reads are in-process: nothing to await")

    async def scenario():
        with pytest.raises(Exception, match="no_such_column"):
            await rows.async_reads.fetchone("SELECT no_such_column FROM resource", ())
        pool = rows.async_reads._pool()
        assert pool.idle == []  # the failed connection was closed, not returned
        assert tuple(await rows.async_reads.fetchone("SELECT $1::int", (1,))) == (1,)
        assert len(pool.idle) == 1 and not pool.idle[0].is_closed()
        await rows.aclose()

    asyncio.run(scenario())
