"""Errors are told by their kind, never by their data: a database error's text holds the SQL
parameters (resource JSON, search values), so it reaches neither the log nor a job's record.
(The server's own log on such errors is tested on a real process in test_live_servers.)"""
from __future__ import annotations

import logging

import sqlalchemy as sa

from app.fhir.registry import registry
from app.fhir.search_params import parse_search
from app.jobs import J, Worker, enqueue, register_handler
from app.log_safety import describe
from tests.app.fhir.db_faults import refusing_resources_with
from tests.app.fhir.helpers import patient

FAMILY, BIRTH_DATE = "Qwertzuiop", "1942-05-06"


def test_a_job_failing_in_the_database_records_the_error_kind_without_phi(app, tenant, database_url, caplog):
    store = app.state.services.store

    def admit(unit, payload):
        unit.create(patient(FAMILY, "Ana", birthDate=BIRTH_DATE))

    register_handler("test-admit", admit)
    with store.for_tenant(tenant).unit() as unit:
        enqueue(unit, "test-admit", {"n": 1}, dedupe_key="admit-1")
    worker = Worker(store, max_attempts=1)
    with refusing_resources_with(database_url, FAMILY), caplog.at_level(logging.INFO):
        while worker.run_once():
            pass
    with store.engine.connect() as conn:
        [job] = conn.execute(sa.select(J).where(J.c.tenant_id == tenant, J.c.kind == "test-admit")).all()
    assert job.status == "dead"
    # e.g. "IntegrityError/IntegrityError (SQLITE_CONSTRAINT_TRIGGER)": the kind, for whoever looks into it
    assert "SQLSTATE P0001" in job.last_error or "SQLITE_CONSTRAINT" in job.last_error, job.last_error
    q = parse_search(registry().get("Task"), [("code", "job-failed")], registry=registry())
    [task] = store.for_tenant(tenant).search(q).matches
    for text in (job.last_error, task.content, caplog.text):
        assert FAMILY not in text and BIRTH_DATE not in text, text
    assert "test-admit" in caplog.text


def test_describe_keeps_the_words_of_other_errors():
    assert describe(ConnectionResetError("payer hung up")) == "ConnectionResetError: payer hung up"
    err = sa.exc.IntegrityError("INSERT INTO x VALUES (?)", (FAMILY,), Exception("UNIQUE constraint failed"))
    assert describe(err) == "IntegrityError/Exception" and FAMILY not in describe(err)
