"""``_elements`` (R4 search.html, "_elements"): matches and reads carry only the named top-level
elements plus resourceType, id, meta and the mandatory and modifier elements, tagged SUBSETTED;
resources added by _include are whole."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.app.fhir.helpers import encounter, patient

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
TAG = {"system": "urn:test:tags", "code": "keep-me"}


def full_patient(**extra):
    return patient(family="Okafor", gender="female", birthDate="1980-02-03", active=True,
                   telecom=[{"system": "phone", "value": "555-0100"}],
                   _birthDate={"extension": [{"url": "urn:test:precision", "valueString": "day"}]},
                   meta={"tag": [TAG]}, **extra)


async def test_search_returns_named_elements_of_the_matches_only(api):
    pid = (await api.post("/fhir/Patient", json=full_patient())).json()["id"]
    eid = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}"))).json()["id"]
    bundle = (await api.get("/fhir/Encounter?_elements=subject&_include=Encounter:patient")).json()
    match = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match")
    included = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include")
    # subject asked for; status and class are mandatory (1..1); period was not asked for
    assert set(match) == {"resourceType", "id", "meta", "subject", "status", "class"}
    assert match["id"] == eid and match["meta"]["versionId"] == "1"
    assert SUBSETTED in match["meta"]["tag"]
    # the included Patient is whole and not tagged
    assert included["id"] == pid and included["telecom"] and "tag" in included["meta"]
    assert SUBSETTED not in included["meta"]["tag"]
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert parse_qs(urlparse(self_link).query)["_elements"] == ["subject"]


async def test_elements_keep_modifiers_primitive_extensions_and_tags(api):
    await api.post("/fhir/Patient", json=full_patient())
    bundle = (await api.get("/fhir/Patient", params={"_elements": "birthDate,name.family,nonsense"})).json()
    [entry] = bundle["entry"]
    resource = entry["resource"]
    # active is a modifier element: kept though not asked for; gender and telecom are gone
    assert set(resource) == {"resourceType", "id", "meta", "birthDate", "_birthDate", "name", "active"}
    assert resource["meta"]["tag"] == [TAG, SUBSETTED]


async def test_paging_links_carry_elements(api):
    for i in range(3):
        await api.post("/fhir/Patient", json=patient(family=f"Page{i}", gender="male"))
    first = (await api.get("/fhir/Patient?_elements=name&_count=2")).json()
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = (await api.get(nxt.removeprefix("http://testserver"))).json()
    assert [set(e["resource"]) for e in first["entry"] + second["entry"]] == [
        {"resourceType", "id", "meta", "name"}] * 3


async def test_read_and_vread_honour_elements(api):
    created = (await api.post("/fhir/Patient", json=full_patient())).json()
    pid = created["id"]
    read = (await api.get(f"/fhir/Patient/{pid}?_elements=gender")).json()
    assert set(read) == {"resourceType", "id", "meta", "gender", "active"}
    assert read["meta"]["tag"] == [TAG, SUBSETTED]
    vread = (await api.get(f"/fhir/Patient/{pid}/_history/1", params={"_elements": "telecom"})).json()
    assert set(vread) == {"resourceType", "id", "meta", "telecom", "active"}
    assert (await api.get(f"/fhir/Patient/{pid}")).json() == created  # without _elements: whole, untagged


async def test_choice_elements_and_decimals_survive_subsetting(api):
    text = ('{"resourceType":"Observation","status":"final","code":{"text":"grip"},'
            '"valueQuantity":{"value":75.00,"unit":"kg"},"note":[{"text":"left hand"}]}')
    oid = (await api.post("/fhir/Observation", content=text,
                          headers={"Content-Type": "application/fhir+json"})).json()["id"]
    read = await api.get(f"/fhir/Observation/{oid}?_elements=value")
    assert set(read.json()) == {"resourceType", "id", "meta", "valueQuantity", "status", "code"}
    assert '"value":75.00' in read.text
    batch = await api.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{oid}?_elements=note"}}]})
    assert set(batch.json()["entry"][0]["resource"]) == {"resourceType", "id", "meta", "note", "status", "code"}
