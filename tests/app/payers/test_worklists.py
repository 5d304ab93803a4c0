"""A/R worklists through the API: denial work items scored (amount x age x nearness of the
deadline), searched by category, payer, owner, status and code and sorted by ``priority-score``;
the daily sweep re-scores them; a biller assigns, notes and closes them; another practice's
people and Tasks stay out of reach."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.fhir.tasks import task_input, work_item
from app.jobs import enqueue
from app.payers import worklists
from fhir_mappings.vocabulary import DENIAL_CATEGORY

from tests.app.payers.test_denials_flow import code_of, denial_tasks, denied_claim
from tests.flows import adrain

SCORE = worklists.PRIORITY_SCORE


def formula(amount: str, age: int, days_left: int | None) -> Decimal:
    """The documented formula, written out: amount x (1 + age/30) x (30 / max(days left, 1))."""
    value = Decimal(amount) * (1 + Decimal(age) / 30)
    if days_left is not None:
        value = value * 30 / max(days_left, 1)
    return value.quantize(Decimal("0.01"))


def item(tid: str, today: date, *, amount: str | None, age: int, days_left: int | None, category: str = "coding",
         payer: str = "payer-a", code: str = "denial") -> dict[str, Any]:
    authored = today - timedelta(days=age)
    inputs = [task_input("category", valueCodeableConcept={"coding": [{"system": DENIAL_CATEGORY, "code": category}]}),
              task_input("payer", valueReference={"reference": f"Organization/{payer}"})]
    if amount is not None:
        inputs.append(task_input("amount", valueMoney={"value": float(amount), "currency": "USD"}))
    task = work_item(code, "Work the denial", "test item", datetime(authored.year, authored.month, authored.day, 9,
                                                                      tzinfo=timezone.utc),
                     task_id=tid, focus=f"Claim/claim-{tid}", inputs=inputs, business_status=category)
    if days_left is not None:
        task["restriction"] = {"period": {"end": (today + timedelta(days=days_left)).isoformat()}}
    worklists.stamp(task, today)
    return task


def write(store: Any, tenant: str, *resources: dict[str, Any]) -> None:
    with store.for_tenant(tenant).unit() as unit:
        for r in resources:
            unit.update(r["resourceType"], r["id"], r)


async def tasks(api, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    r = await api.get(f"/fhir/Task?{query}")
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json().get("entry", [])]


def score_of(task: dict[str, Any]) -> Decimal | None:
    found = [e["valueDecimal"] for e in task.get("extension", []) if e["url"] == SCORE]
    return Decimal(str(found[0])) if found else None


# (id, amount, age in days, days left, category, payer)
ITEMS = [("big-far", "1000.00", 10, 100, "coding", "payer-a"),      # 1000 x 4/3 x 0.3 = 400.00
         ("small-near", "50.00", 5, 2, "coding", "payer-a"),        # 50 x 7/6 x 15 = 875.00
         ("old-mid", "200.00", 90, 30, "coding", "payer-b"),        # 200 x 4 x 1 = 800.00
         ("overdue", "100.00", 40, -3, "coding", "payer-b"),        # 100 x 7/3 x 30 = 7000.00
         ("no-deadline", "300.00", 30, None, "coding", "payer-a"),  # 300 x 2 = 600.00
         ("auth", "500.00", 0, 60, "authorization", "payer-a"),     # 500 x 1 x 0.5 = 250.00
         ("no-amount", None, 10, 5, "coding", "payer-a")]


async def test_the_worklist_is_ordered_by_the_score(api, store, tenant):
    today = store.clock().date()
    write(store, tenant, *[item(t, today, amount=a, age=g, days_left=d, category=c, payer=p)
                           for t, a, g, d, c, p in ITEMS])
    expected = {t: formula(a, g, d) for t, a, g, d, _, _ in ITEMS if a is not None}
    assert expected == {"big-far": Decimal("400.00"), "small-near": Decimal("875.00"), "old-mid": Decimal("800.00"),
                        "overdue": Decimal("7000.00"), "no-deadline": Decimal("600.00"), "auth": Decimal("250.00")}
    for tid, want in expected.items():
        assert score_of((await api.get(f"/fhir/Task/{tid}")).json()) == want, tid
    assert score_of((await api.get("/fhir/Task/no-amount")).json()) is None

    worklist = "status=requested&_sort=-priority-score&_count=50"
    assert await tasks(api, f"{worklist}&category=coding") == [
        "overdue", "small-near", "old-mid", "no-deadline", "big-far", "no-amount"]  # unscored last
    assert await tasks(api, f"{worklist}&category={DENIAL_CATEGORY}|authorization") == ["auth"]
    assert await tasks(api, f"{worklist}&payer=Organization/payer-b") == ["overdue", "old-mid"]
    assert await tasks(api, "status=requested&_sort=priority-score&priority-score=gt500") == [
        "no-deadline", "old-mid", "small-near", "overdue"]
    assert await tasks(api, f"{worklist}&code=denial&category=coding&_count=2") == ["overdue", "small-near"]
    # the next page continues the order
    first = (await api.get(f"/fhir/Task?{worklist}&category=coding&_count=2")).json()
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert [e["resource"]["id"] for e in (await api.get(nxt)).json()["entry"]] == ["old-mid", "no-deadline"]


async def test_the_daily_sweep_rescores_open_items(api, store, tenant):
    today = store.clock().date()
    # Scored three days ago and not since: age and days left have moved on.
    stale = item("stale", today - timedelta(days=3), amount="90.00", age=0, days_left=13)
    closed = item("closed", today - timedelta(days=3), amount="90.00", age=0, days_left=13)
    closed["status"] = "completed"
    write(store, tenant, stale, closed)
    assert score_of((await api.get("/fhir/Task/stale")).json()) == formula("90.00", 0, 13)
    with store.for_tenant(tenant).unit() as unit:
        enqueue(unit, worklists.SWEEP, {"day": today.isoformat()}, dedupe_key=f"test-{worklists.SWEEP}")
    await adrain(store)
    assert score_of((await api.get("/fhir/Task/stale")).json()) == formula("90.00", 3, 10) == Decimal("297.00")
    assert score_of((await api.get("/fhir/Task/closed")).json()) == formula("90.00", 0, 13)  # closed: left alone


async def test_a_payers_denial_lands_on_the_worklist(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                                     route_to_sandbox):
    def not_necessary(data: dict[str, Any]) -> None:
        data["payers"]["MCRDEMO"]["not_medically_necessary"] = list(data["base_fee_schedule"])

    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, not_necessary)
    [task] = await denial_tasks(api)
    today = store.clock().date()
    left = (date.fromisoformat(task["restriction"]["period"]["end"]) - today).days
    amount = next(i["valueMoney"]["value"] for i in task["input"] if i["type"]["text"] == "amount")
    assert score_of(task) == formula(str(amount), 0, left)
    insurer = claim["insurer"]["reference"]
    assert await tasks(api, f"status=requested&category={code_of(task, 'category')}&payer={insurer}"
                            "&_sort=-priority-score") == [task["id"]]


async def practitioner(api, pid: str, tenant: str | None = None) -> None:  # type: ignore[no-untyped-def]
    body = {"resourceType": "Practitioner", "id": pid, "name": [{"family": "Biller", "given": [pid]}]}
    headers = {"x-test-tenant": tenant} if tenant else {}
    r = await api.put(f"/fhir/Practitioner/{pid}", json=body, headers=headers)
    assert r.status_code in (200, 201), r.text


async def test_assign_note_and_close(api, store, tenant):
    today = store.clock().date()
    write(store, tenant, item("w1", today, amount="120.00", age=3, days_left=20))
    await practitioner(api, "biller-kim")
    await practitioner(api, "biller-elsewhere", tenant=f"{tenant}-other")
    version = (await api.get("/fhir/Task/w1")).json()["meta"]["versionId"]

    # Another practice's biller is unknown here: 422, nothing written.
    r = await api.post("/fhir/Task/w1/$assign?owner=Practitioner/biller-elsewhere")
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["owner"], r.text
    for bad in ("Patient/pat-x", "Practitioner/nobody"):
        assert (await api.post(f"/fhir/Task/w1/$assign?owner={bad}")).status_code == 422
    assert (await api.post("/fhir/Task/w1/$assign?owner=a/b/c")).status_code == 400
    assert (await api.get("/fhir/Task/w1")).json()["meta"]["versionId"] == version

    r = await api.post("/fhir/Task/w1/$assign", json={"resourceType": "Parameters", "parameter": [
        {"name": "owner", "valueReference": {"reference": "Practitioner/biller-kim"}}]})
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == {"reference": "Practitioner/biller-kim"}
    assert await tasks(api, "owner=Practitioner/biller-kim&status=requested") == ["w1"]
    # No owner given: the caller's own fhirUser.
    r = await api.post("/fhir/Task/w1/$assign", headers={"x-test-scope": "user/Task.rus", "x-test-fhir-user":
                                                         "Practitioner/biller-kim"})
    assert r.status_code == 200 and r.json()["owner"]["reference"] == "Practitioner/biller-kim", r.text
    r = await api.post("/fhir/Task/w1/$assign", headers={"x-test-scope": "user/Task.rus"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["owner"]

    r = await api.post("/fhir/Task/w1/$note?text=Called%20the%20payer%3A%20resubmit%20with%20records",
                       headers={"x-test-scope": "user/Task.rus", "x-test-fhir-user": "Practitioner/biller-kim"})
    assert r.status_code == 200, r.text
    r = await api.post("/fhir/Task/w1/$note", json={"resourceType": "Parameters", "parameter": [
        {"name": "text", "valueString": "Records sent"}]})
    notes = r.json()["note"]
    assert [n["text"] for n in notes] == ["Called the payer: resubmit with records", "Records sent"]
    assert notes[0]["authorReference"] == {"reference": "Practitioner/biller-kim"} and notes[0]["time"]
    assert (await api.post("/fhir/Task/w1/$note?text=")).status_code == 400
    assert (await api.post("/fhir/Task/w1/$note?text=x&color=red")).status_code == 400

    assert (await api.post("/fhir/Task/w1/$close?status=on-hold")).status_code == 400
    r = await api.post("/fhir/Task/w1/$close?status=completed&outcome=written-off&reason=Under%20the%20small-balance%20limit")
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["status"], closed["businessStatus"], closed["statusReason"]) == (
        "completed", {"text": "written-off"}, {"text": "Under the small-balance limit"})
    assert closed["owner"]["reference"] == "Practitioner/biller-kim" and len(closed["note"]) == 2
    assert score_of(closed) == formula("120.00", 3, 20)  # server-owned elements kept
    assert await tasks(api, "status=requested") == []
    for op in ("$close?status=cancelled", "$assign?owner=Practitioner/biller-kim"):
        r = await api.post(f"/fhir/Task/w1/{op}")
        assert r.status_code == 409 and r.json()["resourceType"] == "OperationOutcome", op

    # Every change was audited as the caller's update.
    audit = (await api.get("/fhir/AuditEvent?entity=Task/w1", headers={"x-test-scope": "user/AuditEvent.rs"})).json()
    assert len(audit.get("entry", [])) >= 5


async def test_other_practices_and_scopes(api, store, tenant):
    today = store.clock().date()
    write(store, tenant, item("w2", today, amount="10.00", age=0, days_left=5))
    other = {"x-test-tenant": f"{tenant}-other"}
    for op in ("$assign?owner=Practitioner/x", "$note?text=hi", "$close?status=completed"):
        r = await api.post(f"/fhir/Task/w2/{op}", headers=other)
        assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome", op
        r = await api.post(f"/fhir/Task/w2/{op}", headers={"x-test-scope": "user/Task.rs"})
        assert r.status_code == 403, op
    assert (await api.get("/fhir/Task/w2")).json()["meta"]["versionId"] == "1"
