"""An update leaves the search-index rows a fresh write of the same content makes (values listed
twice are one row): every version below is compared, table by table, with the same content
created anew."""
from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa

from app.db import SearchDate, SearchNumber, SearchReference, SearchString, SearchToken

TABLES = [m.__table__ for m in (SearchToken, SearchString, SearchDate, SearchReference, SearchNumber)]
VALUE_COLUMNS = {"pk", "res_pk", "tenant_id", "type"}


def _rows(store: Any, tenant: str, rtype: str, rid: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with store.engine.connect() as conn:
        pk = conn.execute(sa.text("SELECT pk FROM resource WHERE tenant_id = :t AND type = :ty AND id = :id"),
                          {"t": tenant, "ty": rtype, "id": rid}).scalar_one()
        for table in TABLES:
            cols = [c for c in table.c if c.name not in VALUE_COLUMNS]
            out[table.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols).where(table.c.res_pk == pk)))
    return out


PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:mrn", "value": "A1"}, {"system": "urn:ssn", "value": "999"}],
    "name": [{"family": "Okafor", "given": ["Grace"]}],
    "birthDate": "1951-06-18",
    "gender": "female",
    "generalPractitioner": [{"reference": "Practitioner/p1"}],
}


def _versions() -> list[dict[str, Any]]:
    steps = []
    p = copy.deepcopy(PATIENT)
    p["identifier"].append({"system": "urn:mrn", "value": "A2"})  # one more value
    steps.append(copy.deepcopy(p))
    p["identifier"] = [p["identifier"][0], p["identifier"][0]]  # two gone, one listed twice
    steps.append(copy.deepcopy(p))
    p.update(birthDate="1951-06-19", gender="other", name=[{"family": "Okafor-Reid", "given": ["Grace", "A"]}])
    steps.append(copy.deepcopy(p))
    p["generalPractitioner"] = [{"reference": "Practitioner/p2"}, {"reference": "Practitioner/p2"}]
    steps.append(copy.deepcopy(p))
    for key in ("identifier", "name", "birthDate", "generalPractitioner"):  # every value gone
        del p[key]
    steps.append(copy.deepcopy(p))
    steps.append(copy.deepcopy(PATIENT))  # and all back
    return steps


async def _each_version_against_a_fresh_write(api: Any, store: Any, tenant: str, first: dict[str, Any],
                                              versions: list[dict[str, Any]]) -> None:
    """Update ``kept`` through ``versions``; after each, its rows equal those of the same content
    created anew (``fresh-n``)."""
    rtype = first["resourceType"]
    r = await api.put(f"/fhir/{rtype}/kept", json={**first, "id": "kept"})
    assert r.status_code == 201, r.text
    for n, version in enumerate(versions):
        r = await api.put(f"/fhir/{rtype}/kept", json={**version, "id": "kept"})
        assert r.status_code == 200, r.text
        fresh = await api.put(f"/fhir/{rtype}/fresh-{n}", json={**version, "id": f"fresh-{n}"})
        assert fresh.status_code == 201, fresh.text
        assert _rows(store, tenant, rtype, "kept") == _rows(store, tenant, rtype, f"fresh-{n}"), n


async def test_each_update_leaves_the_rows_a_fresh_write_makes(api, store, tenant):
    await _each_version_against_a_fresh_write(api, store, tenant, PATIENT, _versions())
    found = (await api.get("/fhir/Patient?identifier=urn:mrn|A1&family:exact=Okafor")).json()
    assert sorted(e["resource"]["id"] for e in found["entry"]) == ["fresh-0", "fresh-1", "fresh-5", "kept"]
    assert (await api.get("/fhir/Patient?identifier=urn:mrn|A2")).json()["total"] == 1  # fresh-0 only


def test_write_statements_stay_within_psycopgs_cached_length():
    """psycopg converts a statement's placeholders once and caches it only up to this length;
    longer write statements were converted anew on every write."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    from app.fhir.store.pg_writes import statement

    for kind in ("insert", "insert_if_absent", "replace", "replace_some"):
        for audited in (False, True):
            for queues in (False, True):
                assert len(statement(kind, audited, queues).encode()) <= MAX_CACHED_STATEMENT_LENGTH, kind


PROCEDURE = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/kept"},
             "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97110"}]},
             "performedDateTime": "2026-03-02T10:00:00Z", "encounter": {"reference": "Encounter/e1"}}


def _procedure_versions() -> list[dict[str, Any]]:
    """Changes under a choice element (performed[x] from dateTime to Period), a nested one, a
    write that changes nothing indexed, and one that changes everything."""
    steps = []
    p = copy.deepcopy(PROCEDURE)
    p["note"] = [{"text": "tolerated well"}]  # nothing indexed
    steps.append(copy.deepcopy(p))
    del p["performedDateTime"]
    p["performedPeriod"] = {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T10:45:00Z"}
    steps.append(copy.deepcopy(p))
    p["code"]["coding"].append({"system": "http://www.ama-assn.org/go/cpt", "code": "97530"})
    p["status"] = "entered-in-error"
    steps.append(copy.deepcopy(p))
    p = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/other"},
         "code": {"coding": [{"code": "97140"}]}, "performedDateTime": "2026-04-01"}
    steps.append(copy.deepcopy(p))
    return steps


async def test_a_change_under_a_choice_element_or_none_leaves_the_rows_a_fresh_write_makes(api, store, tenant):
    await _each_version_against_a_fresh_write(api, store, tenant, PROCEDURE, _procedure_versions())


def test_affected_params_are_those_under_changed_elements():
    from app.fhir.extract import affected_params
    from app.fhir.registry import registry

    rt = registry().types["Procedure"]
    before = {**PROCEDURE, "meta": {"versionId": "1"}}
    assert "date" not in affected_params(rt, before, {**before, "note": [{"text": "x"}]})
    moved = {k: v for k, v in before.items() if k != "performedDateTime"}
    moved["performedPeriod"] = {"start": "2026-03-02"}
    assert "date" in affected_params(rt, before, moved)
    assert "code" not in affected_params(rt, before, moved) and "patient" not in affected_params(rt, before, moved)
    assert affected_params(rt, before, {**before, "code": {"coding": [{"code": "97530"}]}}) >= {"code"}
