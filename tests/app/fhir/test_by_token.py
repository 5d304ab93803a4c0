"""``Reader.by_token``: the server's lookup of resources by many token codes (an answer's patient
control numbers to its claims), planned the same way whatever the statistics say."""
from __future__ import annotations

import json
from typing import Any

from app.fhir.access import Access
from app.fhir.store.reader import _by_token


def _patient(pid: str, *identifiers: tuple[str, str]) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid,
            "identifier": [{"system": system, "value": value} for system, value in identifiers]}


def test_finds_each_code_under_any_system_and_only_current_resources(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        unit.update("Patient", "a", _patient("a", ("urn:mrn", "A1"), ("urn:other", "X")))
        unit.update("Patient", "b", _patient("b", ("urn:pcn", "B1")))
        unit.update("Patient", "gone", _patient("gone", ("urn:mrn", "G1")))
        unit.update("Patient", "c", {"resourceType": "Patient", "id": "c", "gender": "female"})
    with tenant_store.unit() as unit:
        unit.delete("Patient", "gone")
    other = "t-other-" + tenant[2:]
    store.ensure_tenant(other)
    with store.for_tenant(other).unit() as unit:  # another practice's patient with the same number
        unit.update("Patient", "a2", _patient("a2", ("urn:mrn", "A1")))
    with tenant_store.reading() as reader:
        found = reader.by_token("Patient", "identifier", ["A1", "B1", "G1", "female", "nobody"])
        assert [(v.type, v.id) for v in found] == [("Patient", "a"), ("Patient", "b")]
        assert found[0].resource()["identifier"][0]["value"] == "A1"
        assert reader.by_token("Patient", "gender", ["female"])[0].id == "c"
        assert reader.by_token("Patient", "identifier", []) == []


def test_on_postgresql_the_lookups_run_once_before_the_rows_are_read(tenant_store, store, tenant):
    """The statement runs the token lookups as one InitPlan (then reads rows by primary key):
    a semi-join planned on a stale estimate scanned every resource once per lookup."""
    if not store.postgres:
        return  # SQLite plans the IN subquery once by itself
    with store.engine.connect() as conn:
        bound = _by_token(True).params(t=tenant, ty="Claim", p="identifier", codes=["A1", "B1", "C1"])
        sql = str(bound.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar()
    text = json.dumps(plan)
    assert "InitPlan" in text and "search_token" in text
    assert "Semi Join" not in text

    def scans(node: dict[str, Any], inside: bool) -> list[bool]:
        here = [inside] if node.get("Relation Name") == "search_token" else []
        for child in node.get("Plans", []):
            here += scans(child, inside or str(child.get("Subplan Name", "")).startswith("InitPlan"))
        return here

    root = (plan[0] if isinstance(plan, list) else json.loads(plan)[0])["Plan"]
    assert scans(root, False) and all(scans(root, False))


def _coverage(cid: str, patient: str, status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Coverage", "id": cid, "status": status, "beneficiary": {"reference": f"Patient/{patient}"},
            "payor": [{"reference": "Organization/payer"}]}


def test_by_reference_finds_current_resources_pointing_at_any_target(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        unit.update("Coverage", "c1", _coverage("c1", "p1"))
        unit.update("Coverage", "c2", _coverage("c2", "p1", status="cancelled"))
        unit.update("Coverage", "c3", _coverage("c3", "p2"))
        unit.update("Coverage", "c4", _coverage("c4", "p3"))
        unit.update("Coverage", "gone", _coverage("gone", "p2"))
    with tenant_store.unit() as unit:
        unit.delete("Coverage", "gone")
    other = "t-other-" + tenant[2:]
    store.ensure_tenant(other)
    with store.for_tenant(other).unit() as unit:  # another practice's coverage of a patient of the same id
        unit.update("Coverage", "x1", _coverage("x1", "p1"))
    with tenant_store.reading() as reader:
        found = reader.by_reference("Coverage", "beneficiary", "Patient", ["p1", "p2", "nobody"])
        assert sorted(v.id for v in found) == ["c1", "c2", "c3"]
        assert reader.by_reference("Coverage", "beneficiary", "Organization", ["p1"]) == []
        assert reader.by_reference("Coverage", "payor", "Organization", ["payer"]) is not None
        assert reader.by_reference("Coverage", "beneficiary", "Patient", []) == []


def test_by_reference_declines_a_caller_whose_access_is_filtered(store, tenant):
    confined = store.for_tenant(tenant, access=lambda interaction, rtype: Access(patient="p1"))
    with confined.reading() as reader:
        assert reader.by_reference("Coverage", "beneficiary", "Patient", ["p1"]) is None


def test_find_referring_takes_the_search_for_a_filtered_caller(tenant_store, store, tenant):
    from app.fhir.queries import find_referring

    with tenant_store.unit() as unit:
        unit.update("Coverage", "r1", _coverage("r1", "p1"))
        unit.update("Coverage", "r2", _coverage("r2", "p2"))
    with tenant_store.reading() as reader:
        assert sorted(c["id"] for c in find_referring(reader, "Coverage", "beneficiary", "Patient", ["p1", "p2"])) == \
            ["r1", "r2"]
    confined = store.for_tenant(tenant, access=lambda interaction, rtype: Access(patient="p1"))
    with confined.reading() as reader:  # the search applies the patient compartment
        assert [c["id"] for c in find_referring(reader, "Coverage", "beneficiary", "Patient", ["p1", "p2"])] == ["r1"]
        assert find_referring(reader, "Coverage", "beneficiary", "Patient", []) == []
