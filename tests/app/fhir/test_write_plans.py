"""PostgreSQL runs the one-statement writes (``pg_writes``) on generic plans, prepared from
their first execution, and the rest of the writing transaction on its usual plans."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.fhir.store import Store, pg_writes


def _plans(conn: sa.Connection) -> dict[str, tuple[int, int]]:
    """The connection's prepared write statements: first words → (generic plans, custom plans)."""
    rows = conn.exec_driver_sql(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE 'WITH r AS%%'").all()
    return {" ".join(r.statement.split()[:5]): (r.generic_plans, r.custom_plans) for r in rows}


def test_writes_use_generic_plans_and_restore_the_setting(store: Store, tenant: str) -> None:
    if not store.postgres:
        pytest.skip("generic plans are PostgreSQL's")
    ts = store.for_tenant(tenant)
    with ts.unit() as unit:
        made = [unit.create({"resourceType": "Patient", "name": [{"family": f"Plan{n}"}]}).version.id
                for n in range(3)]
        for n, rid in enumerate(made):
            unit.modify("Patient", rid, lambda p, n=n: p.update(gender=["male", "female", "other"][n]))
        after = unit.conn.exec_driver_sql("SELECT current_setting('plan_cache_mode')").scalar_one()
        plans = _plans(unit.conn)
    assert after == "auto"  # the statements after the writes plan as they always do
    inserts = [v for k, v in plans.items() if k.startswith("WITH r AS ( INSERT")]
    updates = [v for k, v in plans.items() if k.startswith("WITH r AS ( UPDATE")]
    assert inserts and updates, plans
    for generic, custom in inserts + updates:
        assert custom == 0 and generic >= 1  # prepared at once, and never planned for the values


def test_a_failed_write_leaves_nothing(store: Store, tenant: str) -> None:
    """The pipeline that brackets the write still fails as one: the transaction rolls back."""
    if not store.postgres:
        pytest.skip("the pipelined write is PostgreSQL's")
    ts = store.for_tenant(tenant)
    created = ts.create({"resourceType": "Patient", "name": [{"family": "Once"}]}).version
    with pytest.raises(Exception), ts.unit() as unit:
        unit.create({"resourceType": "Patient", "name": [{"family": "Twice"}]})
        write: Any = unit.ts.pg_write("insert", created, {"resourceType": "Patient"}, [])
        pg_writes.run(unit.conn, write)  # the same id again: a unique violation
    with store.engine.connect() as conn:
        names = conn.exec_driver_sql(
            "SELECT count(*) FROM resource WHERE tenant_id = %s AND type = 'Patient' AND content::text LIKE %s",
            (tenant, '%Twice%')).scalar_one()
    assert names == 0
