"""Planner statistics on PostgreSQL: without them a read by id can be planned as a scan of every
resource of its type, so the server analyzes tables that never were and warns when autovacuum
(which keeps them current) is off."""
from __future__ import annotations

import pytest
from fastapi import FastAPI


def test_never_analyzed_tables_are_analyzed_and_autovacuum_is_checked(app: FastAPI) -> None:
    store = app.state.services.store
    if not store.postgres:
        pytest.skip("planner statistics are PostgreSQL's")
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS planner_probe (n int)")
        conn.exec_driver_sql("INSERT INTO planner_probe SELECT generate_series(1, 10)")
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    try:
        warnings = store.analyze(never_analyzed_only=True)
        with store.engine.connect() as conn:
            analyzed = conn.exec_driver_sql(
                "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname = 'planner_probe'").scalar()
        assert analyzed
        assert bool(warnings) == (autovacuum != "on")
        assert all("autovacuum" in w for w in warnings)
    finally:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("DROP TABLE planner_probe")


def test_tables_grown_since_their_statistics_are_analyzed_again_when_autovacuum_is_off(app: FastAPI) -> None:
    """A table analyzed while small, then grown, keeps its small statistics until someone
    analyzes it; with autovacuum off the workers do (``refresh_statistics``)."""
    import time

    store = app.state.services.store
    if not store.postgres:
        assert store.refresh_statistics() == []
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS planner_growth (n int)")
        conn.exec_driver_sql("INSERT INTO planner_growth SELECT generate_series(1, 10)")
        conn.exec_driver_sql("ANALYZE planner_growth")
        conn.exec_driver_sql("INSERT INTO planner_growth SELECT generate_series(1, 2000)")
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    try:
        analyzed: list[str] = []
        for _ in range(50):  # the server's activity counters reach pg_stat_user_tables within a second or so
            analyzed = store.refresh_statistics()
            if "planner_growth" in analyzed or autovacuum == "on":
                break
            time.sleep(0.1)
        if autovacuum == "on":
            assert analyzed == []  # autovacuum keeps statistics current: nothing to stand in for
            return
        assert "planner_growth" in analyzed
        with store.engine.connect() as conn:
            tuples = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'planner_growth'").scalar()
        assert tuples == 2010
        assert "planner_growth" not in store.refresh_statistics()  # current now: not analyzed again
    finally:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("DROP TABLE planner_growth")
