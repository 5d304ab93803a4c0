"""Search parameters, modifiers, paging, includes (R4 search.html)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import BASE
from tests.app.fhir.helpers import encounter, patient


async def _ids(api, url: str) -> set[str]:
    r = await api.get(url)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


@pytest.fixture
async def people(api):
    a = (await api.post("/fhir/Patient", json=patient("Müller", "Zoë", mrn="A1", birthDate="1950-02-03",
                                                      gender="female"))).json()["id"]
    b = (await api.post("/fhir/Patient", json=patient("Mullins", "Bo", mrn="B2", birthDate="1950-02-20",
                                                      gender="male"))).json()["id"]
    c = (await api.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Ng"}],
                                               "identifier": [{"value": "C3"}]})).json()["id"]
    return a, b, c


async def test_string_search_modifiers(api, people):
    a, b, c = people
    assert await _ids(api, "/fhir/Patient?name=mul") == {a, b}  # accent- and case-insensitive starts-with
    assert await _ids(api, "/fhir/Patient?family=MULLI") == {b}
    assert await _ids(api, "/fhir/Patient?family=MULLE") == {a}
    assert await _ids(api, "/fhir/Patient?name:exact=Müller") == {a}
    assert await _ids(api, "/fhir/Patient?name:exact=muller") == set()
    assert await _ids(api, "/fhir/Patient?name:contains=lin") == {b}
    assert await _ids(api, "/fhir/Patient?given=zoe") == {a}


async def test_token_forms(api, people):
    a, b, c = people
    assert await _ids(api, "/fhir/Patient?identifier=urn:mrn|A1") == {a}
    assert await _ids(api, "/fhir/Patient?identifier=A1") == {a}
    assert await _ids(api, "/fhir/Patient?identifier=urn:mrn|") == {a, b}
    assert await _ids(api, "/fhir/Patient?identifier=|C3") == {c}
    assert await _ids(api, "/fhir/Patient?identifier=|A1") == set()
    assert await _ids(api, "/fhir/Patient?identifier=A1,B2") == {a, b}
    assert await _ids(api, "/fhir/Patient?gender=female&identifier=A1,B2") == {a}
    assert await _ids(api, f"/fhir/Patient?_id={a},{c}") == {a, c}
    assert await _ids(api, "/fhir/Patient?gender:missing=true") == {c}


@pytest.mark.parametrize("query,expected", [
    ("birthdate=1950-02", {"a", "b"}),
    ("birthdate=eq1950-02-03", {"a"}),
    ("birthdate=ne1950-02-03", {"b"}),
    ("birthdate=gt1950-02-03", {"b"}),
    ("birthdate=ge1950-02-03", {"a", "b"}),
    ("birthdate=lt1950-02-20", {"a"}),
    ("birthdate=le1950-02-20", {"a", "b"}),
    ("birthdate=sa1950-02-03", {"b"}),
    ("birthdate=eb1950-02-20", {"a"}),
    ("birthdate=1950", {"a", "b"}),
    ("birthdate=ge1950-02-10&birthdate=le1950-02-28", {"b"}),
])
async def test_date_prefixes(api, people, query, expected):
    a, b, _ = people
    names = {"a": a, "b": b}
    assert await _ids(api, f"/fhir/Patient?{query}") == {names[x] for x in expected}


async def test_date_search_on_periods_and_times(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    e1 = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}", "2024-03-01T10:00:00-06:00"))).json()["id"]
    e2 = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}", "2024-03-02T09:00:00Z")
                                                   | {"period": {"start": "2024-03-02T09:00:00Z",
                                                                 "end": "2024-03-02T10:00:00Z"}})).json()["id"]
    assert await _ids(api, "/fhir/Encounter?date=ge2024-03-01T16:00:00Z") == {e1, e2}
    assert await _ids(api, "/fhir/Encounter?date=lt2024-03-01T16:00:00Z") == set()
    assert await _ids(api, "/fhir/Encounter?date=2024-03-02") == {e2}
    # e1 has no end: an ongoing period is inside no single day, but overlaps any later range
    assert await _ids(api, "/fhir/Encounter?date=2024-03-01") == set()
    assert await _ids(api, "/fhir/Encounter?date=ge2024-03-01&date=lt2024-03-02") == {e1}


async def test_reference_forms(api):
    p1 = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    p2 = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    e1 = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{p1}"))).json()["id"]
    e2 = (await api.post("/fhir/Encounter", json=encounter(f"{BASE}/Patient/{p2}"))).json()["id"]
    assert await _ids(api, f"/fhir/Encounter?patient={p1}") == {e1}
    assert await _ids(api, f"/fhir/Encounter?patient=Patient/{p2}") == {e2}
    assert await _ids(api, f"/fhir/Encounter?subject={BASE}/Patient/{p1}") == {e1}
    assert await _ids(api, f"/fhir/Encounter?subject:Patient={p2}") == {e2}
    assert await _ids(api, f"/fhir/Encounter?patient=Group/{p1}") == set()


async def test_get_and_post_search_agree(api, people):
    get = await api.get("/fhir/Patient?name=mul&_count=1")
    post = await api.post("/fhir/Patient/_search", data={"name": "mul", "_count": "1"})
    assert post.status_code == 200
    assert get.json()["total"] == post.json()["total"] == 2


async def test_unknown_parameters_ignored_and_left_out_of_self_link(api, people):
    r = await api.get("/fhir/Patient?name=mul&color=blue")
    self_link = next(l["url"] for l in r.json()["link"] if l["relation"] == "self")
    assert self_link.startswith(BASE + "/Patient?")
    assert "color" not in self_link and "name=mul" in self_link
    strict = await api.get("/fhir/Patient?name=mul&color=blue", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["color"]


async def test_bad_search_values_are_400(api):
    for q in ("birthdate=2024-13-45", "_count=abc", "_sort=gender", "_total=maybe", "organization=a/b/c",
              "_include=Patient:nope", "name:fuzzy=x", "_page=garbage"):
        r = await api.get(f"/fhir/Patient?{q}")
        assert r.status_code == 400, q
        assert r.json()["resourceType"] == "OperationOutcome"


async def test_paging_links_are_absolute_and_stable_under_inserts(api):
    ids = [(await api.post("/fhir/Patient", json=patient(f"P{i:02d}"))).json()["id"] for i in range(7)]
    page1 = (await api.get("/fhir/Patient?_count=3")).json()
    assert page1["total"] == 7
    seen = [e["resource"]["id"] for e in page1["entry"]]
    nxt = next(l["url"] for l in page1["link"] if l["relation"] == "next")
    assert nxt.startswith(BASE + "/Patient?")
    # data changes between pages: a new resource and a deletion of one already seen
    await api.post("/fhir/Patient", json=patient("Late"))
    await api.delete(f"/fhir/Patient/{seen[0]}")
    page2 = (await api.get(nxt.removeprefix("http://testserver"))).json()
    seen += [e["resource"]["id"] for e in page2["entry"]]
    prev = next(l["url"] for l in page2["link"] if l["relation"] == "previous")
    nxt = next(l["url"] for l in page2["link"] if l["relation"] == "next")
    page3 = (await api.get(nxt.removeprefix("http://testserver"))).json()
    seen += [e["resource"]["id"] for e in page3["entry"]]
    assert seen[:7] == ids  # nothing skipped or repeated
    back = (await api.get(prev.removeprefix("http://testserver"))).json()
    assert [e["resource"]["id"] for e in back["entry"]] == ids[1:3]  # page 1 minus the deleted one
    assert parse_qs(urlsplit(nxt).query)["_count"] == ["3"]


async def test_sort_by_date_and_last_updated(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    late = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}", "2024-05-01"))).json()["id"]
    early = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}", "2024-01-01"))).json()["id"]
    nodate = (await api.post("/fhir/Encounter", json={**encounter(f"Patient/{pid}"), "period": None} | {})).json()
    asc = (await api.get("/fhir/Encounter?_sort=date")).json()
    assert [e["resource"]["id"] for e in asc["entry"]][:2] == [early, late]
    desc = (await api.get("/fhir/Encounter?_sort=-date&_count=1")).json()
    assert desc["entry"][0]["resource"]["id"] == late
    nxt = next(l["url"] for l in desc["link"] if l["relation"] == "next")
    assert (await api.get(nxt.removeprefix("http://testserver"))).json()["entry"][0]["resource"]["id"] == early
    by_updated = (await api.get("/fhir/Encounter?_sort=-_lastUpdated")).json()
    assert by_updated["entry"][0]["resource"]["id"] == nodate["id"]


async def test_include_revinclude_summary_total(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    eid = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}"))).json()["id"]
    proc = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]}}
    prid = (await api.post("/fhir/Procedure", json=proc)).json()["id"]
    r = (await api.get("/fhir/Encounter?_include=Encounter:patient&_revinclude=Procedure:encounter")).json()
    modes = {(e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"] for e in r["entry"]}
    assert modes == {("Encounter", eid): "match", ("Patient", pid): "include", ("Procedure", prid): "include"}
    assert r["total"] == 1  # includes do not count
    assert (await api.get("/fhir/Procedure?code=http://www.ama-assn.org/go/cpt|97530")).json()["total"] == 1
    count = (await api.get("/fhir/Encounter?_summary=count")).json()
    assert count["total"] == 1 and "entry" not in count
    assert "total" not in (await api.get("/fhir/Encounter?_total=none")).json()
