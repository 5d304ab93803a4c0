"""``Unit.modify_many``: many read-modify-writes of one type in one transaction (on PostgreSQL
one read and one pipelined round trip), each with what ``modify`` writes, none over a version
it did not read."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.db import SearchToken

TOKEN = SearchToken.__table__


def _patient(pid: str, gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "name": [{"family": "Okafor"}]}


def _genders(store: Any, tenant: str) -> dict[str, str]:
    """Each Patient's gender as its search index has it."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT r.id, t.code FROM search_token t JOIN resource r ON r.pk = t.res_pk "
            "WHERE r.tenant_id = :t AND r.type = 'Patient' AND t.param = 'gender'"), {"t": tenant}).all()
    return {r.id: r.code for r in rows}


def _history(store: Any, tenant: str, pid: str) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "SELECT version_id FROM resource_history WHERE tenant_id = :t AND type = 'Patient' AND id = :i "
            "ORDER BY version_id"), {"t": tenant, "i": pid})]


def test_each_change_is_written_once_with_its_index_and_history(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        for pid in ("p1", "p2", "p3", "p4"):
            unit.update("Patient", pid, _patient(pid))
    with tenant_store.unit() as unit:
        unit.delete("Patient", "p4")

    def to_male(p: dict[str, Any]) -> None:
        p["gender"] = "male"

    def declined(p: dict[str, Any]) -> bool:
        p["gender"] = "other"
        return False  # the change says no: nothing written

    with tenant_store.unit() as unit:
        results = unit.modify_many("Patient", {"p1": to_male, "p2": declined, "p3": lambda p: None,
                                               "p4": to_male, "nobody": to_male})
    assert results["p1"] is not None and results["p1"].version.version_id == 2
    assert {k: v for k, v in results.items() if v is None}.keys() == {"p2", "p3", "p4", "nobody"}
    assert tenant_store.read("Patient", "p1").resource()["gender"] == "male"
    assert tenant_store.read("Patient", "p2").resource()["gender"] == "female"
    assert _genders(store, tenant) == {"p1": "male", "p2": "female", "p3": "female"}
    assert _history(store, tenant, "p1") == [1, 2] and _history(store, tenant, "p2") == [1]


def test_a_write_that_loses_its_race_is_applied_again_to_the_newer_version(tenant_store, store, tenant):
    """Another transaction commits a new version of p1 between this unit's read and its write:
    the compare-and-set write does nothing and the change is applied again on top of it."""
    if not store.postgres:
        pytest.skip("SQLite has one writer at a time: no other writer can commit in between")
    with tenant_store.unit() as unit:
        for pid in ("p1", "p2"):
            unit.update("Patient", pid, _patient(pid))
    runs: list[str] = []

    def add_name(p: dict[str, Any]) -> None:
        runs.append(p["id"])
        if runs.count("p1") == 1 and p["id"] == "p1":
            with tenant_store.unit() as other:  # its own connection and transaction, committed now
                other.modify("Patient", "p1", lambda q: q.update(birthDate="1951-06-18"))
        p["name"].append({"family": "Reid"})

    with tenant_store.unit() as unit:
        results = unit.modify_many("Patient", {"p1": add_name, "p2": add_name})
    assert runs.count("p1") == 2 and runs.count("p2") == 1
    p1 = tenant_store.read("Patient", "p1")
    assert p1.version_id == 3 and results["p1"].version.version_id == 3
    assert p1.resource()["birthDate"] == "1951-06-18"  # the other writer's change kept
    assert [n["family"] for n in p1.resource()["name"]] == ["Okafor", "Reid"]
    assert _history(store, tenant, "p1") == [1, 2, 3]
    assert tenant_store.read("Patient", "p2").version_id == 2


def test_update_many_answers_in_the_order_asked_whatever_order_it_writes_in(tenant_store, store, tenant):
    """The writes go in type/id order (one lock order for every batch); each answer still
    stands at the place of its resource in the request, new and replaced alike."""
    with tenant_store.unit() as unit:
        unit.update("Patient", "p2", _patient("p2"))
    asked = [_patient("p3", "male"), _patient("p1", "other"), _patient("p2", "male")]
    with tenant_store.unit() as unit:
        results = unit.update_many(asked)
    assert [(r.version.id, r.version.version_id, r.created) for r in results] == [
        ("p3", 1, True), ("p1", 1, True), ("p2", 2, False)]
    assert _genders(store, tenant) == {"p1": "other", "p2": "male", "p3": "male"}
