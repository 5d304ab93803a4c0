"""Index values arrive in the database as written, whatever characters they hold: PostgreSQL's
writes send them as array literals, where quotes, backslashes, braces, commas, white space and
the word NULL all mean something."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.fhir.store.pg_writes import array_literal

AWKWARD = ['say "hi"', "back\\slash", "{braces}", "a,b", " padded ", "NULL", "null", "",
           "tab\there", "line\nbreak", "café ü 東京", "\\\"both\\\""]


def _patient(pid: str, family: str, code: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}],
            "identifier": [{"system": "urn:awkward", "value": code}]}


def test_awkward_values_are_stored_and_found_as_written(tenant_store, store):
    with tenant_store.unit() as unit:
        for n, value in enumerate(AWKWARD):
            if value.strip():
                unit.update("Patient", f"p{n}", _patient(f"p{n}", value, value))
    with tenant_store.unit() as unit:  # replaced: the update path writes the index again
        for n, value in enumerate(AWKWARD):
            if value.strip():
                unit.modify("Patient", f"p{n}", lambda r: r.update(gender="other"))
    with store.engine.connect() as conn:
        codes = set(conn.execute(sa.text("SELECT code FROM search_token WHERE param = 'identifier' "
                                         "AND system = 'urn:awkward'")).scalars())
    assert codes == {v for v in AWKWARD if v.strip()}
    with tenant_store.reading() as reader:
        for n, value in enumerate(AWKWARD):
            if value.strip():
                found = reader.by_token("Patient", "identifier", [value])
                assert [v.id for v in found] == [f"p{n}"], value


def test_array_literal_round_trips_on_postgresql(store):
    if not store.postgres:
        pytest.skip("array literals are PostgreSQL's")
    values = AWKWARD + [None, "7"]
    with store.engine.connect() as conn:
        back = conn.exec_driver_sql("SELECT %(a)s::text[], %(n)s::bigint[], %(e)s::text[]",
                                    {"a": array_literal(values), "n": array_literal([1, -2, 2**40]),
                                     "e": array_literal([])}).one()
    assert back == (values, [1, -2, 2**40], [])
