"""Write races are settled by the database: one winner, versions never repeat, no duplicates."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.audit import AUDIT
from app.fhir.errors import PreconditionFailed
from tests.app.fhir.helpers import patient, race


def test_same_if_match_exactly_one_wins(tenant_store):
    pid = tenant_store.create(patient()).version.id
    results = race(6, lambda i: tenant_store.update("Patient", pid, {**patient(given=f"G{i}"), "id": pid}, if_match=1))
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, PreconditionFailed)]
    assert len(wins) == 1 and len(losses) == 5
    versions, _ = tenant_store.history("Patient", pid)
    assert [v.version_id for v in versions] == [2, 1]
    with tenant_store.store.engine.connect() as conn:  # the losers' writes left no audit row either
        actions = conn.execute(sa.select(AUDIT.c.action).where(
            AUDIT.c.tenant_id == tenant_store.tenant_id, AUDIT.c.entity == f"Patient/{pid}")).scalars().all()
    assert sorted(actions) == ["C", "U"]


def test_unconditional_updates_never_repeat_versions(tenant_store):
    pid = tenant_store.create(patient()).version.id
    results = race(5, lambda i: tenant_store.update("Patient", pid, {**patient(given=f"G{i}"), "id": pid}))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.version.version_id for r in results) == [2, 3, 4, 5, 6]


def test_concurrent_conditional_creates_make_one_resource(tenant_store):
    criteria = [("identifier", "urn:mrn|RACE")]
    results = race(6, lambda i: tenant_store.create(patient(mrn="RACE"), if_none_exist=criteria))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.status for r in results) == [200, 200, 200, 200, 200, 201]
    assert len({r.version.id for r in results}) == 1


def test_processes_starting_together_ensure_the_same_tenant_once(app):
    """Workers and servers starting at once each ensure the default tenant; none may fail."""
    store = app.state.services.store
    tenant = "t-start-" + uuid.uuid4().hex[:8]
    results = race(8, lambda _i: store.ensure_tenant(tenant))
    assert [r for r in results if isinstance(r, Exception)] == []
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tenant WHERE id = :t"), {"t": tenant}).scalar() == 1


async def test_same_if_match_over_the_api_exactly_one_wins(api):
    """The API's update path (one awaited compare-and-set statement on PostgreSQL, the writer
    thread on SQLite) settles the same race the same way."""
    import asyncio

    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    answers = await asyncio.gather(*(api.put(f"/fhir/Patient/{pid}", json={**patient(given=f"G{i}"), "id": pid},
                                             headers={"If-Match": 'W/"1"'}) for i in range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [412] * 5
    history = (await api.get(f"/fhir/Patient/{pid}/_history")).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    unconditional = await asyncio.gather(*(api.put(f"/fhir/Patient/{pid}", json={**patient(given=f"U{i}"), "id": pid})
                                           for i in range(4)))
    assert sorted(r.headers["etag"] for r in unconditional) == ['W/"3"', 'W/"4"', 'W/"5"', 'W/"6"']
