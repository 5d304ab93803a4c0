"""Denials become work, end to end against the sandbox payer: a denied (or rejected) claim gets
one open denial Task with its category, codes, amount at stake, next action, deadline and
priority; contractual and patient-responsibility adjustments open nothing; a redelivered answer
opens no second Task; a paid replacement closes it."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.payers.inbound import queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12.codes import table
from payer_adapters.x12.validate import validate

from tests.flows import NOW, SANDBOX, adrain, claim_for, connect, lifecycle, load_practice, queued_claim

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
CATEGORY = "https://therabridge.dev/fhir/CodeSystem/denial-category"
ACTION = "https://therabridge.dev/fhir/CodeSystem/denial-action"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"
ALVAREZ = "1EG4TE5MK73"


def value(task: dict[str, Any], name: str) -> Any:
    found = [i for i in task["input"] if i["type"]["text"] == name]
    assert found, name
    i = found[0]
    return next(v for k, v in i.items() if k.startswith("value"))


def code_of(task: dict[str, Any], name: str) -> str:
    return value(task, name)["coding"][0]["code"]


def reasons(task: dict[str, Any]) -> list[str]:
    return [i["valueCodeableConcept"]["text"].split(":")[0] for i in task["input"] if i["type"]["text"] == "reason"]


async def denial_tasks(api, **params: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    query = "&".join(f"{k}={v}" for k, v in params.items())
    bundle = (await api.get(f"/fhir/Task?code={TASK_CODES}|denial" + (f"&{query}" if query else ""))).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def answer(store: Any, tenant: str, payer: Mailbox) -> list[str]:
    written = payer.process(NOW)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    return written


async def denied_claim(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,  # type: ignore[no-untyped-def]
                       change) -> tuple[dict[str, Any], Mailbox, list[str]]:
    """Alvarez's Medicare claim answered by a sandbox payer whose data ``change`` altered."""
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    await adrain(store)
    cfg = load_config()
    change(cfg.data)
    payer = Mailbox(mailbox, Engine(cfg))
    written = await answer(store, tenant, payer)
    return (await api.get(f"/fhir/Claim/{claim['id']}")).json(), payer, written


def require_auth(data: dict[str, Any]) -> None:
    for benefit in data["members"][ALVAREZ]["benefits"].values():
        benefit["auth_required"] = True


def _eob_adjustments(eob: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    out = []
    for item in eob.get("item") or []:
        for a in item["adjudication"]:
            if "reason" in a:
                out.append((a["category"]["coding"][0]["code"], a["reason"]["coding"][0]["code"],
                            Decimal(str(a["amount"]["value"]))))
    return out


async def test_an_authorization_denial_opens_one_task_and_a_paid_replacement_closes_it(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim, payer, written = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, require_auth)
    [eob] = [e["resource"] for e in (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}"))
             .json()["entry"]]
    adjustments = _eob_adjustments(eob)
    assert adjustments and {(g, c) for g, c, _ in adjustments} == {("CO", "197")}

    [task] = await denial_tasks(api)
    assert task["status"] == "requested" and task["focus"]["reference"] == f"Claim/{claim['id']}"
    assert task["for"] == claim["patient"]
    assert code_of(task, "category") == "authorization" and value(task, "category")["coding"][0]["system"] == CATEGORY
    assert code_of(task, "next-action") == "appeal" and value(task, "next-action")["coding"][0]["system"] == ACTION
    assert reasons(task) == ["CO-197"]
    co197 = value(task, "reason")["coding"]
    assert co197[1]["system"] == CARC and co197[1]["display"]  # the CARC's text from the data file
    assert Decimal(str(value(task, "amount")["value"])) == sum(a for _, _, a in adjustments) \
        == Decimal(str(claim["total"]["value"]))
    remitted = date.fromisoformat(eob["payment"]["date"])
    assert task["restriction"]["period"]["end"] == (remitted + timedelta(days=120)).isoformat()  # Medicare
    assert task["performerType"][0]["coding"][0]["code"] == "biller"
    assert task["priority"] == "routine"  # 120 days left, a small amount
    # found by category and by code
    assert [t["id"] for t in await denial_tasks(api, **{"input-code": f"{CATEGORY}|authorization"})] == [task["id"]]
    assert [t["id"] for t in await denial_tasks(api, **{"input-code": f"{CARC}|197"})] == [task["id"]]
    assert await denial_tasks(api, **{"input-code": f"{CATEGORY}|coding"}) == []

    # The same 835 again (another file name), and the same answer under another payment trace:
    # still one Task.
    [remit] = [w for w in written if w.startswith("835")]
    payer.redeliver(remit)
    text = (mailbox / "archive" / remit).read_text()
    element, terminator = text[3], text[105]  # ISA is fixed width
    trn = next(s for s in text.split(terminator) if s.strip().startswith(f"TRN{element}"))
    (mailbox / "outbox" / "835_resent.x12").write_text(text.replace(trn, trn.replace(f"{element}1{element}",
                                                                                     f"{element}1{element}R", 1)))
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert len((await api.get("/fhir/PaymentReconciliation")).json()["entry"]) == 2  # the re-traced one posted
    [again] = await denial_tasks(api)
    assert again["id"] == task["id"] and reasons(again) == ["CO-197"]

    # The authorization arrives; the visit is corrected and its replacement is paid: the
    # original's denial Task closes by itself.
    for benefit in payer.engine.data["members"][ALVAREZ]["benefits"].values():
        benefit["auth_required"] = False
    proc = (await api.get("/fhir/Procedure/enc-alvarez-1-p2")).json()
    proc["performedPeriod"]["end"] = "2026-11-03T09:58:00-06:00"
    assert (await api.put("/fhir/Procedure/enc-alvarez-1-p2", json=proc)).status_code == 200
    await adrain(store)
    correction = await claim_for(api, "enc-alvarez-1")
    assert correction["id"] != claim["id"]
    assert correction["related"][0]["claim"]["reference"] == f"Claim/{claim['id']}"
    assert (await api.post(f"/fhir/Claim/{correction['id']}/$submit")).status_code == 202
    await adrain(store)
    [sent] = [p for p in (mailbox / "inbox").iterdir() if p.name.startswith("837P_")]
    assert validate(sent.read_bytes()) == []
    await answer(store, tenant, payer)
    assert lifecycle((await api.get(f"/fhir/Claim/{correction['id']}")).json()) in ("paid", "partially-paid")
    closed = (await api.get(f"/fhir/Task/{task['id']}")).json()
    assert closed["status"] == "completed" and closed["businessStatus"]["text"] == "paid"
    assert await denial_tasks(api, status="requested") == []


async def test_medical_necessity_denial_is_appealed_within_medicares_120_days(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    def not_necessary(data: dict[str, Any]) -> None:
        data["payers"]["MCRDEMO"]["not_medically_necessary"] = list(data["base_fee_schedule"])

    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, not_necessary)
    [task] = await denial_tasks(api)
    assert code_of(task, "category") == "medical-necessity" and code_of(task, "next-action") == "appeal"
    assert set(reasons(task)) == {"CO-50"}
    assert code_of(task, "remark") == "N115" and value(task, "remark")["coding"][0]["system"] == RARC
    [eob] = [e["resource"] for e in (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}"))
             .json()["entry"]]
    end = date.fromisoformat(task["restriction"]["period"]["end"])
    assert end - date.fromisoformat(eob["payment"]["date"]) == timedelta(days=120)


async def test_contractual_and_patient_responsibility_open_nothing(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, lambda data: None)
    [eob] = [e["resource"] for e in (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}"))
             .json()["entry"]]
    groups = {(g, c) for g, c, _ in _eob_adjustments(eob)}
    assert ("CO", "45") in groups and ("PR", "2") in groups and groups <= {("CO", "45"), ("PR", "1"), ("PR", "2")}
    assert lifecycle(claim) in ("paid", "partially-paid")
    assert await denial_tasks(api) == []


async def test_a_payer_override_in_the_data_changes_the_category(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox,
        monkeypatch: pytest.MonkeyPatch):
    rules = table("denial_categories")
    monkeypatch.setitem(rules["payers"], "MCRDEMO", {"carc": {"CO-197": {"category": "eligibility"}}})
    await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, require_auth)
    [task] = await denial_tasks(api)
    assert code_of(task, "category") == "eligibility" and code_of(task, "next-action") == "correct-and-resubmit"
    assert reasons(task) == ["CO-197"]


async def test_a_277ca_rejection_opens_a_correct_and_resubmit_task(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    def unknown_member(data: dict[str, Any]) -> None:
        del data["members"][ALVAREZ]

    claim, _, written = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, unknown_member)
    assert [w.split("_")[0] for w in written] == ["999", "277CA"]
    assert lifecycle(claim) == "rejected"
    [task] = await denial_tasks(api)
    assert task["focus"]["reference"] == f"Claim/{claim['id']}"
    assert code_of(task, "category") == "eligibility" and code_of(task, "next-action") == "correct-and-resubmit"
    assert reasons(task) == ["A7"] and value(task, "reason")["coding"][1]["code"] == "164"
    assert Decimal(str(value(task, "amount")["value"])) == Decimal(str(claim["total"]["value"]))
    first = min(date.fromisoformat(i["servicedDate"]) for i in claim["item"])
    assert task["restriction"]["period"]["end"] == (first + timedelta(days=90)).isoformat()


async def _fhir_payer_answers(api, store, tenant, payer_settings, demo_bundle, sandbox, change):  # type: ignore[no-untyped-def]
    """The demo practice on the sandbox's FHIR API (Medicare, auto-submit), its data changed first."""
    change(sandbox.state.sandbox.engine.data)
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="medicare", auto_submit=True)
    await adrain(store)
    return await claim_for(api, "enc-alvarez-1")


async def test_a_payer_apis_denial_and_rejection_open_denial_tasks(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox, sandbox):
    claim = await _fhir_payer_answers(api, store, tenant, payer_settings, demo_bundle, sandbox, require_auth)
    assert lifecycle(claim) == "denied"
    [response] = [e["resource"] for e in (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}"))
                  .json()["entry"]]
    assert response["outcome"] == "complete"
    tasks = [t for t in await denial_tasks(api) if t["focus"]["reference"] == f"Claim/{claim['id']}"]
    [task] = tasks
    assert code_of(task, "category") == "authorization" and reasons(task) == ["CO-197"]
    assert Decimal(str(value(task, "amount")["value"])) == Decimal(str(claim["total"]["value"]))
    assert task["restriction"]["period"]["end"] == (NOW.date() + timedelta(days=60)).isoformat()


async def test_a_payer_apis_rejection_opens_a_correct_and_resubmit_task(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox, sandbox):
    def unknown_member(data: dict[str, Any]) -> None:
        del data["members"][ALVAREZ]

    claim = await _fhir_payer_answers(api, store, tenant, payer_settings, demo_bundle, sandbox, unknown_member)
    assert lifecycle(claim) == "rejected"
    [task] = [t for t in await denial_tasks(api) if t["focus"]["reference"] == f"Claim/{claim['id']}"]
    assert code_of(task, "category") == "eligibility" and code_of(task, "next-action") == "correct-and-resubmit"
