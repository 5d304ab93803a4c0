"""The API's statements awaited on PostgreSQL: reads by id and one-statement creates give the
same answers and rows as the transactional path, from any event loop (each keeps its own
connections), a broken connection is never handed out again, and a create that fails writes
nothing."""
from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from app.audit import AUDIT
from app.fhir.search_sql import DATE, REF, STRING, TOKEN, R
from app.outbox import J, QueuedJob
from tests.app.fhir.helpers import encounter, patient


def _async_pg(app):  # type: ignore[no-untyped-def]
    db = app.state.services.store.async_pg
    if db is None:
        pytest.skip("SQLite statements are in-process: nothing to await")
    return db


def test_reads_by_id_match_the_synchronous_path_from_each_event_loop(app, tenant_store):
    db = _async_pg(app)
    created = tenant_store.create(patient(family="Loop")).version

    loops = []

    async def read_twice():
        loops.append(asyncio.get_running_loop())
        return [await tenant_store.aread("Patient", created.id) for _ in range(2)]

    first, second = asyncio.run(read_twice()), asyncio.run(read_twice())
    for v in first + second:
        assert (v.id, v.version_id, v.content) == (created.id, 1, tenant_store.read("Patient", created.id).content)
    kept = [loop for loop, _pool in db.pools.values()]
    assert loops[1] in kept and loops[0] not in kept  # the first loop's pool went with its loop
    rows = app.state.services.store.rows
    assert asyncio.run(rows.aget(tenant_store.tenant_id, "Patient", "no-such-id")) is None


def test_a_failed_statement_closes_its_connection(app):
    db = _async_pg(app)

    async def scenario():
        with pytest.raises(Exception, match="no_such_column"):
            await db.fetchone("SELECT no_such_column FROM resource", ())
        pool = db._pool()
        assert pool.idle == []  # the failed connection was closed, not returned
        assert tuple(await db.fetchone("SELECT $1::int", (1,))) == (1,)
        assert len(pool.idle) == 1 and not pool.idle[0].is_closed()
        await db.close()

    asyncio.run(scenario())


def _rows_of(engine, tenant: str, rid: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Everything stored for one resource, without the keys that differ between two copies."""
    with engine.connect() as conn:
        pk = conn.execute(sa.select(R.c.pk).where(R.c.tenant_id == tenant, R.c.id == rid)).scalar_one()
        index = {t.name: sorted(tuple(r) for r in conn.execute(  # as text: open periods end at 'infinity'
                     sa.select(*(sa.cast(c, sa.Text) for c in t.c if c.name not in ("pk", "res_pk")))
                     .where(t.c.res_pk == pk)).all())
                 for t in (TOKEN, STRING, DATE, REF)}
        jobs = conn.execute(sa.select(J.c.kind, J.c.payload, J.c.status).where(
            J.c.tenant_id == tenant, J.c.payload.contains(rid))).all()
        audit = conn.execute(sa.select(AUDIT.c.action, AUDIT.c.patient, AUDIT.c.agent).where(
            AUDIT.c.tenant_id == tenant, AUDIT.c.entity == f"Encounter/{rid}")).all()
    return {"index": index, "jobs": [(k, p.replace(rid, "<id>"), s) for k, p, s in jobs], "audit": audit}


def test_a_one_statement_create_writes_what_the_transactional_create_writes(app, tenant_store):
    _async_pg(app)
    engine = app.state.services.store.engine
    pid = tenant_store.create(patient(family="Same")).version.id
    visit = encounter(f"Patient/{pid}", identifier=[{"system": "urn:ehr", "value": "V1"}])

    result = asyncio.run(tenant_store.acreate(dict(visit)))
    fast, slow = result.version, tenant_store.create(dict(visit)).version

    assert (result.status, result.created, fast.version_id) == (201, True, 1) and fast.id != slow.id
    read = tenant_store.read("Encounter", fast.id)
    assert read.resource() == fast.resource() and read.etag == 'W/"1"'
    assert [v.version_id for v in tenant_store.history("Encounter", fast.id)[0]] == [1]
    fast_rows, slow_rows = _rows_of(engine, tenant_store.tenant_id, fast.id), _rows_of(engine, tenant_store.tenant_id, slow.id)
    assert fast_rows["index"]["search_reference"] and fast_rows["index"] == slow_rows["index"]
    assert fast_rows["jobs"] == slow_rows["jobs"] == [("generate-claim", '{"encounter":"<id>"}', "queued")]
    assert len(fast_rows["audit"]) == 1 and fast_rows["audit"] == slow_rows["audit"]


def test_a_create_whose_observer_must_read_takes_the_transaction(app, tenant_store):
    """A Procedure queues claim generation only if its Encounter is finished: that needs a read
    inside the writing transaction, which the one-statement path cannot do."""
    pid = tenant_store.create(patient(family="Proc")).version.id
    eid = tenant_store.create(encounter(f"Patient/{pid}")).version.id
    procedure = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                 "encounter": {"reference": f"Encounter/{eid}"},
                 "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]}}
    later = asyncio.run(tenant_store.acreate(procedure)).version
    with app.state.services.store.engine.connect() as conn:
        keys = conn.execute(sa.select(J.c.dedupe_key).where(J.c.tenant_id == tenant_store.tenant_id)).scalars().all()
    assert f"generate-claim:Encounter/{eid}@{later.resource()['meta']['lastUpdated']}" in keys


def test_a_one_statement_create_that_fails_writes_nothing(app, tenant_store, monkeypatch):
    _async_pg(app)
    st = app.state.services.store
    too_long = QueuedJob("k" * 200, {}, "too-long")  # job.kind holds 64 characters: the statement fails
    monkeypatch.setattr(st, "observers", [*st.observers, lambda unit, new, previous: [too_long]])
    visit = encounter("Patient/p-none", identifier=[{"system": "urn:ehr", "value": "FAILS"}])

    with pytest.raises(Exception, match="too long"):
        asyncio.run(tenant_store.acreate(visit))

    with st.engine.connect() as conn:
        for table in (R, TOKEN, J):
            assert conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.tenant_id == tenant_store.tenant_id)).scalar_one() == 0, table.name
        assert conn.execute(sa.select(sa.func.count()).select_from(AUDIT).where(
            AUDIT.c.tenant_id == tenant_store.tenant_id)).scalar_one() == 0


def test_a_one_statement_update_writes_what_the_transactional_update_writes(app, tenant_store):
    _async_pg(app)
    engine = app.state.services.store.engine
    pid = tenant_store.create(patient(family="Upd")).version.id
    fast_id, slow_id = (tenant_store.create(encounter(f"Patient/{pid}", status="in-progress")).version.id for _ in range(2))

    def finished(rid: str) -> dict:
        return {**encounter(f"Patient/{pid}", start="2024-03-02T09:00:00Z"), "id": rid}

    result = asyncio.run(tenant_store.aupdate("Encounter", fast_id, finished(fast_id), if_match=1))
    slow = tenant_store.update("Encounter", slow_id, finished(slow_id)).version

    assert (result.status, result.created, result.version.version_id, slow.version_id) == (200, False, 2, 2)
    assert [v.version_id for v in tenant_store.history("Encounter", fast_id)[0]] == [2, 1]
    assert tenant_store.read("Encounter", fast_id).resource() == result.version.resource()
    fast_rows, slow_rows = _rows_of(engine, tenant_store.tenant_id, fast_id), _rows_of(engine, tenant_store.tenant_id, slow_id)
    assert ("search_date" in fast_rows["index"]) and fast_rows["index"] == slow_rows["index"]
    assert ("Encounter", "date", "2024-03-02 09:00:00+00") == fast_rows["index"]["search_date"][0][1:4]
    assert fast_rows["jobs"] == slow_rows["jobs"] == [("generate-claim", '{"encounter":"<id>"}', "queued")]
    assert sorted(a for a, _p, _g in fast_rows["audit"]) == sorted(a for a, _p, _g in slow_rows["audit"]) == ["C", "U"]


def test_an_update_that_loses_its_race_writes_nothing_and_takes_the_transaction(app, tenant_store, monkeypatch):
    """The compare-and-set write finds the version moved on (here: a stale read, as when another
    writer commits in between); it writes nothing, not even its audit row, and the Unit path
    updates the version that is current."""
    _async_pg(app)
    rows = app.state.services.store.rows
    rid = tenant_store.create(patient(family="Race")).version.id
    stale = asyncio.run(rows.aget(tenant_store.tenant_id, "Patient", rid))
    tenant_store.update("Patient", rid, patient(family="Other", id=rid))  # version 2, behind the read's back

    async def stale_read(tenant_id, rtype, wanted):  # type: ignore[no-untyped-def]
        return stale

    monkeypatch.setattr(rows, "aget", stale_read)
    result = asyncio.run(tenant_store.aupdate("Patient", rid, patient(family="Last", id=rid)))

    assert result.version.version_id == 3 and tenant_store.read("Patient", rid).resource()["name"][0]["family"] == "Last"
    assert [v.version_id for v in tenant_store.history("Patient", rid)[0]] == [3, 2, 1]
    with app.state.services.store.engine.connect() as conn:
        actions = conn.execute(sa.select(AUDIT.c.action).where(
            AUDIT.c.tenant_id == tenant_store.tenant_id, AUDIT.c.entity == f"Patient/{rid}")).scalars().all()
    assert sorted(actions) == ["C", "U", "U"]  # the lost write left no audit row
