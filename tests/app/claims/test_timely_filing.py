"""Timely filing: the daily sweep warns 30, 14 and 7 days before a claim's filing deadline (once
per threshold), and a claim past its deadline is marked and never sent."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from app.claims.timely_filing import SWEEP, run_sweep
from app.fhir.exact_json import ExactNumber
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE
from tests.flows import jobs

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
LIMIT = 180  # the commercial profile's default: no payer connection names its own days here


def today() -> date:
    return datetime.now(timezone.utc).date()


def claim(cid: str, days_ago: int, code: str = "clean") -> dict[str, Any]:
    dos = (today() - timedelta(days=days_ago)).isoformat()
    return {"resourceType": "Claim", "id": cid, "status": "active", "use": "claim",
            "patient": {"reference": "Patient/pat-tf"}, "created": dos + "T12:00:00Z",
            "insurer": {"reference": "Organization/payer-unlinked"}, "provider": {"reference": "Organization/practice"},
            "total": {"value": ExactNumber("100.00"), "currency": "USD"},
            "item": [{"sequence": 1, "servicedDate": dos, "productOrService": {"coding": [{"code": "97110"}]}}],
            "extension": [{"url": CLAIM_LIFECYCLE, "valueCode": code}]}


def put(store: Any, tenant: str, *claims: dict[str, Any]) -> None:
    with store.for_tenant(tenant).unit() as unit:
        for c in claims:
            unit.update("Claim", c["id"], c)


def sweep(store: Any, tenant: str) -> None:
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": today().isoformat()})


async def warnings(api: Any) -> dict[str, list[str]]:
    bundle = (await api.get(f"/fhir/Task?code={TASK_CODES}|timely-filing&_count=100")).json()
    out: dict[str, list[str]] = {}
    for e in bundle.get("entry", []):
        t = e["resource"]
        key = next(i["valueString"] for i in t["input"] if i["type"]["text"] == "threshold")
        out.setdefault(t["focus"]["reference"].removeprefix("Claim/"), []).append(key)
    return {k: sorted(v) for k, v in out.items()}


async def test_warnings_come_on_the_right_day_once_per_threshold(api, store, tenant):
    put(store, tenant, claim("tf-31", LIMIT - 31), claim("tf-30", LIMIT - 30), claim("tf-14", LIMIT - 14),
        claim("tf-7", LIMIT - 7, "rejected"), claim("tf-sent", LIMIT - 7, "submitted"),
        {**claim("tf-void", LIMIT - 7), "status": "cancelled"})
    assert [j.dedupe_key for j in jobs(store, tenant, SWEEP)] == [f"{SWEEP}@{today()}"]  # a new claim queues it
    sweep(store, tenant)
    assert await warnings(api) == {"tf-30": ["30"], "tf-14": ["14"], "tf-7": ["7"]}
    sweep(store, tenant)  # the same day again: nothing twice
    assert await warnings(api) == {"tf-30": ["30"], "tf-14": ["14"], "tf-7": ["7"]}
    # It runs again tomorrow; 16 days on, the claim at 30 days left reaches 14 (moved by its date of service).
    assert f"{SWEEP}@{today() + timedelta(days=1)}" in [j.dedupe_key for j in jobs(store, tenant, SWEEP)]
    put(store, tenant, claim("tf-30", LIMIT - 14), claim("tf-31", LIMIT - 30))
    sweep(store, tenant)
    assert await warnings(api) == {"tf-30": ["14", "30"], "tf-31": ["30"], "tf-14": ["14"], "tf-7": ["7"]}


async def test_a_claim_past_its_deadline_is_marked_and_not_sent(api, store, tenant):
    put(store, tenant, claim("tf-late", LIMIT + 1), claim("tf-last-day", LIMIT))
    sweep(store, tenant)
    assert await warnings(api) == {"tf-late": ["past"], "tf-last-day": ["7"]}
    r = await api.post("/fhir/Claim/tf-late/$submit")
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Claim.item.servicedDate"]
    assert f"ended on {today() - timedelta(days=1)}" in issue["diagnostics"]
    stored = (await api.get("/fhir/Claim/tf-late")).json()
    assert stored["meta"]["versionId"] == "1" and stored["extension"][0]["valueCode"] == "clean"
    # On its last day the claim is still sent (here: refused only for want of a payer connection).
    r = await api.post("/fhir/Claim/tf-last-day/$submit")
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Claim.insurer"], r.text
