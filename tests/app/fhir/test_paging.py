"""Page links: a forged ``_page`` is a 400 OperationOutcome on every paged interaction, and a real
one works only for the tenant and the query it was issued for."""
from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import json
import pytest

from app.fhir.errors import FhirError
from app.fhir.paging import PageTokens, Position
from tests.app.fhir.helpers import encounter, patient

AUDITOR = {"x-test-scope": "user/AuditEvent.rs"}


def token(doc: object) -> str:
    """A page token in the shape the server once issued (base64 of a JSON position, unsigned)."""
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


FORGED = {
    "position 2^70": token({"s": None, "p": 2**70, "d": "n"}),
    "position 1e30": token({"s": None, "p": 1e30, "d": "n"}),
    "negative position": token({"s": None, "p": -5, "d": "n"}),
    "position as text": token({"s": None, "p": "12", "d": "n"}),
    "sort value an object": token({"s": {"a": 1}, "p": 1, "d": "n"}),
    "sort value a number": token({"s": 17, "p": 1, "d": "p"}),
    "sort value not a date": token({"s": "not a date", "p": 1, "d": "n"}),
    "unknown direction": token({"s": None, "p": 1, "d": "sideways"}),
    "a list": token([1, 2, 3]),
    "a string": token("text"),
    "garbage": "garbage",
    "huge number": "99999999999999999999999",
    "negative number": "-1",
    "not ascii": "é" * 40,
    "bad signature": "x." + "A" * 43,
    "very long": "A" * 5000,
}


def next_link(bundle: dict) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == "next").removeprefix("http://testserver")


def page_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["_page"][0]


async def paged_urls(api) -> list[str]:
    """One URL per paged interaction (search, sorted search, the three histories, the audit trail)."""
    await api.post("/fhir/Patient", json=patient("Other"))
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid, "gender": "female"})
    for start in ("2024-03-01", "2024-04-01"):
        await api.post("/fhir/Encounter", json=encounter(f"Patient/{pid}", start))
    return ["/fhir/Patient", "/fhir/Encounter?_sort=-date", "/fhir/Patient/_history", f"/fhir/Patient/{pid}/_history",
            "/fhir/_history", "/fhir/AuditEvent"]


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
async def test_forged_page_tokens_are_400_on_every_paged_interaction(api, forged):
    for url in await paged_urls(api):
        r = await api.get(url, params={"_page": forged}, headers=AUDITOR if "AuditEvent" in url else {})
        assert r.status_code == 400, (url, forged, r.text)
        assert r.json()["issue"][0]["expression"] == ["_page"], (url, forged)


async def test_page_links_still_walk_every_interaction(app, api):
    for url in await paged_urls(api):
        headers = AUDITOR if "AuditEvent" in url else {}
        app.state.services.audit.flush()
        first = (await api.get(url, params={"_count": 1}, headers=headers)).json()
        assert any(link["relation"] == "next" for link in first["link"]), (url, first)
        second = await api.get(next_link(first), headers=headers)
        assert second.status_code == 200, (url, second.text)
        assert second.json()["entry"][0] != first["entry"][0], url


async def test_a_page_link_is_refused_on_another_query_or_tenant(api, tenant):
    pid = (await api.post("/fhir/Patient", json=patient("Alpha"))).json()["id"]
    for name in ("Alpha", "Alpha", "Beta"):
        await api.post("/fhir/Patient", json=patient(name))
    await api.put(f"/fhir/Patient/{pid}", json={**patient("Alpha"), "id": pid})
    search = page_of(next_link((await api.get("/fhir/Patient?name=Alpha&_count=1")).json()))
    history = page_of(next_link((await api.get(f"/fhir/Patient/{pid}/_history?_count=1")).json()))
    # Its own query, parameters in any order and another page size: accepted.
    assert (await api.get(f"/fhir/Patient?_count=2&name=Alpha&_page={search}")).status_code == 200
    assert (await api.get(f"/fhir/Patient/{pid}/_history?_page={history}")).status_code == 200
    refused = [
        f"/fhir/Patient?name=Beta&_count=1&_page={search}",
        f"/fhir/Patient?name=Alpha&gender=male&_count=1&_page={search}",
        f"/fhir/Patient?name=Alpha&_sort=_lastUpdated&_page={search}",
        f"/fhir/Encounter?_page={search}",
        f"/fhir/Patient/_history?_page={search}",
        f"/fhir/Patient/_history?_page={history}",
        f"/fhir/_history?_page={history}",
        f"/fhir/Patient/other-{pid[:8]}/_history?_page={history}",
        f"/fhir/Patient/{pid}/_history?_since=2000-01-01&_page={history}",
    ]
    for url in refused:
        r = await api.get(url)
        assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["_page"], url
    other_tenant = {"x-test-tenant": tenant + "-other"}
    for url in (f"/fhir/Patient?name=Alpha&_count=1&_page={search}", f"/fhir/Patient/{pid}/_history?_page={history}"):
        r = await api.get(url, headers=other_tenant)
        assert r.status_code == 400, url


def test_a_signed_token_must_still_hold_a_position():
    """The MAC proves the server wrote the token; its content is checked all the same."""
    pages = PageTokens(lambda: b"k" * 32)
    assert pages.read(pages.issue("t", "q", Position("2024-01-01", 7, "p")), "t", "q") == Position("2024-01-01", 7, "p")
    for bad in ([None, 2**70, "n"], [None, -1, "n"], [None, 1, "x"], [3, 1, "n"], [None, True, "n"], [None, 1.0, "n"],
                {"s": None, "p": 1, "d": "n"}, [None, 1]):
        payload = json.dumps(bad).encode()
        signed = base64.urlsafe_b64encode(payload).decode() + "." + base64.urlsafe_b64encode(
            pages._mac("t", "q", payload)).decode()
        with pytest.raises(FhirError) as err:
            pages.read(signed, "t", "q")
        assert err.value.status == 400, bad
    other_key = PageTokens(lambda: b"j" * 32)
    with pytest.raises(FhirError):
        other_key.read(pages.issue("t", "q", Position(None, 1)), "t", "q")


async def test_the_first_link_on_a_new_database_can_be_issued_inside_a_transaction(tmp_path):
    """The key exists once the database is migrated: creating it while a transaction Bundle
    holds SQLite's write lock would wait on that very lock."""
    import asyncio

    import httpx

    from app.db import make_engine
    from app.main import create_app
    from app.migrations import upgrade
    from app.settings import Settings
    from tests.conftest import tenant_from_header

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(make_engine(url))
    app = create_app(Settings(database_url=url, public_url="http://testserver", embedded_worker=False),
                     authenticate=tenant_from_header)
    app.state.services.store.ensure_tenant("default")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("One"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient("Two"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient?_count=1"}}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await asyncio.wait_for(client.post("/fhir", json=bundle), 20)
    assert r.status_code == 200, r.text
    found = r.json()["entry"][2]["resource"]
    assert any(link["relation"] == "next" for link in found["link"])
    app.state.services.audit.close(timeout=1)
