"""A/R searches on Claim through the API: ``billed`` and ``outstanding`` (number, with prefixes
and ``_sort``), ``submitted`` (date), sorting by payer and lifecycle, and ``outstanding`` kept
current as answers are written, reversed and deleted; paging a sorted search walks every claim once."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from app.fhir.search_params import parse_search

from tests.app.payers.test_ar_aging import eob, store_all

# claim -> what the payer still owes now (every EOB counts, whatever its date)
OWED = {"c-30": "100.00", "c-31": "50.00", "c-120": "300.00", "c-121": "400.00", "c-paid": "0.00",
        "c-paid-later": "0.00", "c-reversed": "90.00", "c-cancelled": "70.00", "c-clean": "60.00",
        "c-sent-later": "50.00"}
BILLED = {"c-30": "100.00", "c-31": "200.00", "c-120": "300.00", "c-121": "400.00", "c-paid": "80.00",
          "c-paid-later": "150.00", "c-reversed": "90.00", "c-cancelled": "70.00", "c-clean": "60.00",
          "c-sent-later": "50.00"}


def write(store: Any, tenant: str, resource: dict[str, Any]) -> None:
    """As posting stores an answer: the server's own write (the store computes the index)."""
    with store.for_tenant(tenant).unit() as unit:
        unit.update(resource["resourceType"], resource["id"], resource)


async def ids(api: httpx.AsyncClient, query: str) -> list[str]:
    r = await api.get(f"/fhir/Claim?{query}")
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json().get("entry", [])]


def by(values: dict[str, str], *, desc: bool = False) -> list[str]:
    """Ids in the order of their amounts, ties by creation order (the store's pk order)."""
    order = list(values)
    return sorted(order, key=lambda c: ((-1 if desc else 1) * Decimal(values[c]),
                                        (-1 if desc else 1) * order.index(c)))


async def test_billed_and_outstanding_filter_and_sort(api, store, tenant):
    store_all(store, tenant)
    assert sorted(await ids(api, "billed=gt150")) == ["c-120", "c-121", "c-31"]
    assert sorted(await ids(api, "billed=ge150&billed=le200")) == ["c-31", "c-paid-later"]
    assert await ids(api, "billed=100") == ["c-30"]
    assert await ids(api, "billed=100.00") == ["c-30"]
    assert sorted(await ids(api, "billed=lt60,eq400")) == ["c-121", "c-sent-later"]
    assert sorted(await ids(api, "billed=ap95")) == ["c-30", "c-reversed"]  # within 10%
    assert await ids(api, "_sort=billed") == by(BILLED)
    assert await ids(api, "_sort=-billed") == by(BILLED, desc=True)

    assert sorted(await ids(api, "outstanding=gt0")) == sorted(c for c, v in OWED.items() if Decimal(v) > 0)
    assert sorted(await ids(api, "outstanding=0")) == ["c-paid", "c-paid-later"]
    assert sorted(await ids(api, "outstanding=le50")) == ["c-31", "c-paid", "c-paid-later", "c-sent-later"]
    assert await ids(api, "outstanding=50.00&lifecycle=partially-paid") == ["c-31"]
    assert await ids(api, "_sort=outstanding") == by(OWED)
    assert await ids(api, "_sort=-outstanding") == by(OWED, desc=True)
    assert await ids(api, "insurer=Organization/payer-b&outstanding=gt0&_sort=-outstanding") == ["c-121", "c-reversed"]


async def test_outstanding_follows_the_answers(api, store, tenant):
    store_all(store, tenant)

    async def owed(cid: str) -> Decimal | None:
        # Read back through the number search itself: the one exact match of outstanding=eq<x>.
        r = await api.get(f"/fhir/Claim?_id={cid}&_sort=outstanding&outstanding:missing=false")
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 1
        for probe in ("0", "10", "20", "30", "40", "50", "60", "70", "100", "150", "180"):
            if (await ids(api, f"_id={cid}&outstanding=eq{probe}.00")) == [cid]:
                return Decimal(probe)
        return None

    assert await owed("c-30") == Decimal(100)
    # An answer posts: 60 paid, 10 contractual, 10 moved to the patient (PR closes it too).
    answer = eob("e-30", "c-30", paid="60.00", created="2026-07-01", co="10.00")
    answer["item"][0]["adjudication"].append({"category": {"coding": [{"system": answer["item"][0]["adjudication"][0]
                                                                       ["category"]["coding"][0]["system"],
                                                                       "code": "PR"}]},
                                              "amount": {"value": 10.00, "currency": "USD"}})
    write(store, tenant, answer)
    assert await owed("c-30") == Decimal(20)
    assert await ids(api, "_id=c-30&outstanding=gt19.99&outstanding=lt20.01") == ["c-30"]
    # The payer reverses it: a second, negative answer puts the whole amount back.
    reversal = eob("e-30-rev", "c-30", paid="-60.00", created="2026-07-10", co="-10.00")
    reversal["item"][0]["adjudication"].append({**answer["item"][0]["adjudication"][1],
                                                "amount": {"value": -10.00, "currency": "USD"}})
    write(store, tenant, reversal)
    assert await owed("c-30") == Decimal(100)
    # Answers that settle nothing: one entered in error, one deleted.
    answer["status"] = "entered-in-error"
    write(store, tenant, answer)
    assert await owed("c-30") == Decimal(180)  # only the reversal (-80) counts now
    with store.for_tenant(tenant).unit() as unit:
        assert unit.delete("ExplanationOfBenefit", "e-30-rev") is not None
    assert await owed("c-30") == Decimal(100)
    # The claim itself rewritten: a lifecycle step keeps the row (its billed amount is the same),
    # a new total recomputes it, and an answer after that still counts against the new total.
    with store.for_tenant(tenant).unit() as unit:
        unit.modify("Claim", "c-30", lambda c: c.update(priority={"coding": [{"code": "stat"}]}) or True)
    assert (await api.get("/fhir/Claim/c-30")).json()["meta"]["versionId"] == "2"
    assert await owed("c-30") == Decimal(100)
    with store.for_tenant(tenant).unit() as unit:
        unit.modify("Claim", "c-30", lambda c: c["total"].update(value=150) or True)
    assert await owed("c-30") == Decimal(150)
    write(store, tenant, eob("e-30-b", "c-30", paid="80.00", created="2026-07-20"))
    assert await owed("c-30") == Decimal(70)
    # The EOBs' own computed parameter.
    r = await api.get("/fhir/ExplanationOfBenefit?settled=lt0")
    assert [e["resource"]["id"] for e in r.json().get("entry", [])] == ["e-rev"]


async def test_submitted_payer_and_lifecycle_sorts(api, store, tenant):
    store_all(store, tenant)
    # Age since submission: sent more than 90 days before the report day.
    assert sorted(await ids(api, "submitted=lt2026-04-01")) == ["c-120", "c-121"]
    assert await ids(api, "submitted=ge2026-06-01&_sort=-submitted") == [
        "c-sent-later", "c-paid-later", "c-reversed", "c-31", "c-30"]  # a tie: the later-created first
    assert "c-clean" not in await ids(api, "submitted:missing=false")
    assert (await ids(api, "_sort=submitted"))[-1] == "c-clean"  # no value: last either way
    assert (await ids(api, "_sort=-submitted"))[-1] == "c-clean"
    by_payer = await ids(api, "outstanding=gt0&_sort=insurer")
    assert by_payer[-2:] in (["c-121", "c-reversed"], ["c-reversed", "c-121"])
    assert set(by_payer[-2:]) == {"c-121", "c-reversed"}
    # "submitted" codes first, ties the later-created first
    assert (await ids(api, "_sort=-lifecycle"))[:5] == ["c-sent-later", "c-cancelled", "c-121", "c-120", "c-30"]
    assert (await ids(api, "_sort=lifecycle"))[0] == "c-clean"


async def test_sorted_pages_walk_every_claim_once(api, store, tenant):
    store_all(store, tenant)
    for key in ("outstanding", "-outstanding", "billed", "-insurer", "lifecycle"):
        seen: list[str] = []
        url: str | None = f"/fhir/Claim?_sort={key}&_count=3"
        while url:
            page = (await api.get(url)).json()
            seen += [e["resource"]["id"] for e in page.get("entry", [])]
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        assert sorted(seen) == sorted(OWED) and len(seen) == len(OWED), key
        assert seen == await ids(api, f"_sort={key}&_count=100"), key


async def test_bad_number_values_are_refused(api, store, tenant):
    for query, where in (("billed=lots", "billed"), ("outstanding=gt1e3", "outstanding"),
                         ("_sort=focus", "_sort"), ("billed:exact=5", "billed:exact")):
        r = await api.get(f"/fhir/Claim?{query}")
        assert r.status_code == 400, (query, r.text)
        body: dict[str, Any] = r.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["expression"] == [where]


async def test_the_aging_total_is_the_sum_of_what_is_outstanding(api, store, tenant):
    """As of today the report's claims are those ``outstanding=gt0`` finds, less the resolved
    (cancelled) and the unsent, and its total is the sum of their outstanding amounts."""
    store_all(store, tenant)
    report = (await api.get("/fhir/Claim/$ar-aging")).json()
    [total] = [p for p in report["parameter"] if p["name"] == "total"]
    amount = next(p["valueMoney"]["value"] for p in total["part"] if p["name"] == "outstanding")
    reported = [c["valueReference"]["reference"].removeprefix("Claim/") for b in total["part"] if b["name"] == "bucket"
                for c in b["part"] if c["name"] == "claim"]
    owed = await ids(api, "outstanding=gt0&_count=100")
    assert sorted(reported) == sorted(set(owed) - {"c-cancelled", "c-clean"})
    assert Decimal(str(amount)) == sum((Decimal(OWED[c]) for c in reported), Decimal(0))
    # Per payer too, drilled down with the payer's search.
    for payer in ("payer-a", "payer-b"):
        [part] = [p for p in report["parameter"] if p["name"] == "payer"
                  and p["part"][0]["valueReference"]["reference"] == f"Organization/{payer}"]
        claims = [c["valueReference"]["reference"].removeprefix("Claim/") for b in part["part"] if b["name"] == "bucket"
                  for c in b["part"] if c["name"] == "claim"]
        found = await ids(api, f"insurer=Organization/{payer}&outstanding=gt0&lifecycle:missing=false&_count=100")
        assert sorted(claims) == sorted(set(found) - {"c-cancelled", "c-clean"})


async def test_the_aging_summary_drills_down_with_searches(api, store, tenant):
    """``detail=summary`` leaves the claim lists out; each bucket's ``search`` finds its claims
    (here exactly: no void, replaced or written-off claim in the fixtures owes anything)."""
    store_all(store, tenant)
    full = (await api.get("/fhir/Claim/$ar-aging")).json()
    summary = (await api.get("/fhir/Claim/$ar-aging?detail=summary")).json()
    assert '"claim"' not in json.dumps(summary) and '"claim"' in json.dumps(full)
    drilled = 0
    for p in [p for p in full["parameter"] if p["name"] in ("payer", "total")]:
        for b in [b for b in p["part"] if b["name"] == "bucket"]:
            claims = sorted(c["valueReference"]["reference"].removeprefix("Claim/") for c in b["part"]
                            if c["name"] == "claim")
            [search] = [c["valueUri"] for c in b["part"] if c["name"] == "search"]
            r = await api.get(f"/fhir/{search}&_count=100")
            assert r.status_code == 200, r.text
            assert sorted(e["resource"]["id"] for e in r.json().get("entry", [])) == claims, search
            drilled += len(claims)
    assert drilled == 2 * len([c for c, v in OWED.items() if Decimal(v) > 0 and c not in ("c-cancelled", "c-clean")])
    past = (await api.get("/fhir/Claim/$ar-aging?asOf=2026-06-30")).json()
    assert '"search"' not in json.dumps(past)  # a past day's report has no live search
    bad = await api.get("/fhir/Claim/$ar-aging?detail=everything")
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["detail"]


async def test_answers_posted_at_once_all_count(store, tenant):
    """Eight answers for one claim written by eight transactions at the same time: the stored
    outstanding is billed less all of them (each recomputation waits for the one before)."""
    import threading

    store_all(store, tenant)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def post(n: int) -> None:
        try:
            answer = eob(f"e-race-{n}", "c-121", paid="10.00", created="2026-07-01")
            barrier.wait(timeout=30)  # then all at once (SQLite's writers queue; PostgreSQL's overlap)
            with store.for_tenant(tenant).unit() as unit:
                unit.update("ExplanationOfBenefit", answer["id"], answer)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with store.for_tenant(tenant).reading() as reader:
        found = reader.search(parse_search(store.registry.get("Claim"), [("_id", "c-121"), ("outstanding", "320.00")],
                                           registry=store.registry))
    assert [v.id for v in found.matches] == ["c-121"]  # 400 less eight payments of 10


async def test_a_denial_written_off_leaves_the_aging(api, store, tenant):
    from app.fhir.tasks import task_input, work_item
    from app.payers import worklists

    store_all(store, tenant)
    task = work_item("denial", "Work the denial", "c-30 denied", store.clock(), task_id="deny-c-30",
                     focus="Claim/c-30", inputs=[task_input("amount", valueMoney={"value": 100.0, "currency": "USD"})])
    worklists.stamp(task, store.clock().date())
    write(store, tenant, task)

    async def aged() -> set[str]:
        report = (await api.get("/fhir/Claim/$ar-aging")).json()
        [total] = [p for p in report["parameter"] if p["name"] == "total"]
        return {c["valueReference"]["reference"] for b in total["part"] if b["name"] == "bucket"
                for c in b["part"] if c["name"] == "claim"}

    assert "Claim/c-30" in await aged()
    r = await api.post("/fhir/Task/deny-c-30/$close?status=completed&outcome=written-off&reason=small%20balance")
    assert r.status_code == 200, r.text
    assert "Claim/c-30" not in await aged()
    assert "Claim/c-30" in {f"Claim/{c}" for c in await ids(api, "outstanding=gt0")}  # still unpaid, no longer worked
