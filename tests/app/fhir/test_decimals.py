"""Decimals keep the precision they were sent with (R4 datatypes.html#decimal): ``75.00`` comes
back as ``75.00``, ``1.50E+3`` as ``1.50E+3``, a 30-digit value with all its digits — from every
interaction that returns the resource, on SQLite and PostgreSQL."""
from __future__ import annotations

import copy
import uuid
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from app.db import make_engine
from app.fhir.exact_json import ExactNumber, dumps, loads, needs_exact
from app.fhir.store import in_key_order
from app.loader import Loader
from app.migrations import upgrade

# Numbers as a client writes them; a float would turn each into something else.
SENT = ("75.00", "1.50E+3", "0.123456789012345678901234567890", "123456789012345678901234567890", "20.10")


def observation_text(encounter_id: str | None = None, *, rid: str | None = None) -> str:
    """An Observation whose decimals are written as in SENT (JSON text built by hand: a JSON
    library would normalize them)."""
    head = '"resourceType":"Observation"' + (f',"id":"{rid}"' if rid else "")
    enc = f',"encounter":{{"reference":"Encounter/{encounter_id}"}}' if encounter_id else ""
    return ("{" + head + ',"status":"final","code":{"text":"grip strength"}' + enc +
            f',"valueQuantity":{{"value":{SENT[0]},"unit":"kg"}}'
            f',"component":[{{"code":{{"text":"a"}},"valueQuantity":{{"value":{SENT[1]}}}}},'
            f'{{"code":{{"text":"b"}},"valueQuantity":{{"value":{SENT[2]}}}}}]'
            f',"referenceRange":[{{"low":{{"value":{SENT[3]}}},"high":{{"value":{SENT[4]}}}}}]'
            ',"extension":[{"url":"urn:test:plain","valueDecimal":3.5}]}')


def assert_as_sent(text: str) -> None:
    for number in SENT:
        assert f'"value":{number}' in text.replace(" ", ""), (number, text)
    assert '"valueDecimal":3.5' in text.replace(" ", "")


JSON = {"Content-Type": "application/fhir+json"}


async def test_create_read_vread_update_history_keep_decimals_as_sent(api):
    created = await api.post("/fhir/Observation", content=observation_text(), headers=JSON)
    assert created.status_code == 201, created.text
    assert_as_sent(created.text)
    oid = created.json()["id"]
    assert_as_sent((await api.get(f"/fhir/Observation/{oid}")).text)
    updated = await api.put(f"/fhir/Observation/{oid}", content=observation_text(rid=oid), headers=JSON)
    assert updated.status_code == 200, updated.text
    assert_as_sent(updated.text)
    for version in (1, 2):
        assert_as_sent((await api.get(f"/fhir/Observation/{oid}/_history/{version}")).text)
    history = (await api.get(f"/fhir/Observation/{oid}/_history")).text
    assert history.count('"value":75.00') == 2
    assert_as_sent(history)


async def test_search_and_include_keep_decimals_as_sent(api):
    enc = (await api.post("/fhir/Encounter", json={
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}})).json()["id"]
    oid = (await api.post("/fhir/Observation", content=observation_text(enc), headers=JSON)).json()["id"]
    assert_as_sent((await api.get(f"/fhir/Observation?_id={oid}")).text)
    included = await api.get(f"/fhir/Encounter?_id={enc}&_revinclude=Observation:encounter")
    assert '"mode":"include"' in included.text
    assert_as_sent(included.text)


async def test_transaction_and_batch_responses_keep_decimals_as_sent(api):
    entry = ('{"fullUrl":"urn:uuid:5b0c1b9e-2f4e-4a47-9d0e-0d1f5e7a2c11","resource":' + observation_text()
             + ',"request":{"method":"POST","url":"Observation"}}')
    r = await api.post("/fhir", content='{"resourceType":"Bundle","type":"transaction","entry":[' + entry + "]}",
                       headers=JSON)
    assert r.status_code == 200, r.text
    assert_as_sent(r.text)
    oid = r.json()["entry"][0]["resource"]["id"]
    assert_as_sent((await api.get(f"/fhir/Observation/{oid}")).text)
    batch = await api.post("/fhir", headers=JSON, content=(
        '{"resourceType":"Bundle","type":"batch","entry":[' + entry + ","
        f'{{"request":{{"method":"GET","url":"Observation/{oid}"}}}}]}}'))
    assert batch.text.replace(" ", "").count('"value":75.00') == 2
    assert_as_sent(batch.text)


def test_load_command_keeps_decimals_as_sent(settings, tenant_store, tenant, tmp_path: Path):
    path = tmp_path / "obs.json"
    path.write_text(observation_text(rid="loaded-obs"))
    assert list(Loader.direct(settings, tenant).load_file(path)) == [(str(path), None)]
    assert_as_sent(tenant_store.read("Observation", "loaded-obs").content)


def test_parser_keeps_only_the_numbers_a_float_would_rewrite():
    doc = loads(b'{"a":75.00,"b":75.5,"c":[1e2,7,-0.5],"d":"x: 1.50","e":99999999999999999999}')
    assert doc["b"] == 75.5 and type(doc["b"]) is float and doc["c"][1:] == [7, -0.5]
    assert isinstance(doc["a"], ExactNumber) and isinstance(doc["c"][0], ExactNumber)
    assert doc["a"] == 75.0 and doc["a"] + 1 == 76.0  # computes and compares as the float it is
    # so a resource sent again equals its stored version read back with orjson (the Claim guard
    # compares them), even where the decimal has no exact float (0.10)
    assert loads(b'{"net":{"value":0.10}}') == orjson.loads(b'{"net":{"value":0.10}}')
    assert dumps(doc) == b'{"a":75.00,"b":75.5,"c":[1e2,7,-0.5],"d":"x: 1.50","e":99999999999999999999}'
    assert dumps(copy.deepcopy(doc)) == dumps(doc)  # transactions copy entries
    # the common case never leaves orjson: no number that a float would rewrite
    assert not needs_exact(orjson.dumps({"status": "finished", "rank": 1, "value": 75.5, "text": "1.50"}))


def test_postgres_upgrade_stores_documents_as_written_and_reads_older_rows(database_url):
    """Migration 0011 turns the JSONB document columns into json; rows written before keep
    JSONB's rendering and are served with resourceType, id and meta first."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite stores the text as written already")
    schema = "mig_" + uuid.uuid4().hex[:10]
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = sa.create_engine(database_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine, "0010")
        old = '{"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}, "active": true}'
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO resource (tenant_id, type, id, version_id, last_updated, deleted, content) "
                                 "VALUES ('t', 'Patient', 'p1', 1, now(), false, CAST(:c AS jsonb))"), {"c": old})
        upgrade(engine)
        with engine.begin() as conn:
            kinds = conn.execute(sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                "AND table_name IN ('resource', 'resource_history') AND column_name = 'content'"), {"s": schema}).scalars()
            assert set(kinds) == {"json"}
            conn.execute(sa.text("INSERT INTO resource (tenant_id, type, id, version_id, last_updated, deleted, content) "
                                 "VALUES ('t', 'Observation', 'o1', 1, now(), false, CAST(:c AS json))"),
                         {"c": observation_text(rid="o1")})
            texts = dict(conn.execute(sa.text("SELECT id, content::text FROM resource")).all())
        assert_as_sent(texts["o1"])
        assert texts["p1"].startswith('{"id"')  # JSONB's key order, from before the upgrade
        assert in_key_order(texts["p1"]).startswith('{"resourceType":"Patient","id":"p1","meta"')
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
