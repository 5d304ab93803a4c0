"""Scheduled collection of one payer connection never overlaps itself: while its collection is
queued or running (a slow payer), the next slots start none; a collector that died is taken over
when its lease runs out, and the slots after that queue collections again."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.jobs import J, Worker
from app.payers import inbound

from tests.flows import SANDBOX, connect, jobs, load_practice


async def test_a_connection_is_collected_by_one_job_at_a_time(api, store, tenant, payer_settings, demo_bundle,
                                                              route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"})
    with store.engine.begin() as conn:  # the test runs the schedule's slots itself
        conn.execute(J.delete().where(J.c.tenant_id == tenant))
    first_slot = inbound._slot(datetime.now(timezone.utc), payer_settings.collect_interval)

    def slot(n: int) -> list:  # type: ignore[type-arg]
        """The schedule's run for slot ``n``; the connection's collections afterwards."""
        with store.for_tenant(tenant).unit() as unit:
            inbound.run_schedule(unit, {"slot": first_slot + n})
        return jobs(store, tenant, inbound.COLLECT)

    assert len(slot(0)) == 1
    [collecting] = Worker(store).claim()  # a worker is collecting; the payer takes its time
    assert collecting.kind == inbound.COLLECT
    assert len(slot(1)) == 1  # the next slot starts no second collection of that connection

    with store.engine.begin() as conn:  # the collector died: its lease runs out
        conn.execute(J.update().where(J.c.pk == collecting.pk)
                     .values(locked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert len(slot(2)) == 1  # a worker takes the dead collector's job over rather than adding one …
    assert Worker(store).run_once() == 1
    [done] = jobs(store, tenant, inbound.COLLECT)
    assert done.status == "done" and done.attempts == 2, done.last_error

    after = slot(3)  # … and once it is done, the next slot collects again
    assert [j.status for j in after] == ["done", "queued"]
