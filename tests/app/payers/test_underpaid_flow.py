"""The practice's own fees reach the payer, and a payment under contract opens a work item:
fee schedule (ChargeItemDefinitions with a contracted amount for the payer) → claim → 837P
(CLM02/SV102 carry the practice's fees; pyx12 passes it) → the sandbox payer's 835 allows less
than the contract → one ``underpaid`` Task with the difference, not opened again on redelivery."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.payers import underpayment
from app.payers.inbound import queue_collection
from fhir_mappings.charges import definition
from payer_adapters.x12 import decode, validate

from tests.flows import adrain, claim_for, connect, lifecycle, load_practice, payer_answers_and_collect

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
MEDICARE = "Organization/payer-medicare"
# the practice's fees from 2026-11-01, and what its Medicare contract says the payer allows per unit
FEES = {"97165": (Decimal("175.00"), Decimal("110.00")), "97530": (Decimal("64.00"), Decimal("40.00"))}
SANDBOX_ALLOWS = {"97165": Decimal("103.50"), "97530": Decimal("35.10")}  # its fee schedule, multiplier 1.0


def _segments(x12: str) -> list[list[str]]:
    terminator, element = x12[105], x12[3]
    return [s.strip().split(element) for s in x12.split(terminator) if s.strip()]


def _inputs(task: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in task["input"]:
        value = next(v for k, v in i.items() if k.startswith("value"))
        out.setdefault(i["type"]["text"], []).append(value)
    return out


async def _underpaid(api) -> list[dict[str, Any]]:
    bundle = (await api.get("/fhir/Task", params={"code": f"{TASK_CODES}|underpaid"})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def test_practice_fee_billed_and_underpayment_opens_one_work_item(api, store, tenant, payer_settings,
                                                                         mailbox: Path, demo_bundle,
                                                                         route_to_sandbox):
    await load_practice(api, demo_bundle)
    for code, (fee, contracted) in FEES.items():
        resource = definition(code, [], fee, definition_id=f"fee-{code}-2026-11", start=date(2026, 11, 1),
                              expected={MEDICARE: contracted})
        r = await api.put(f"/fhir/ChargeItemDefinition/{resource['id']}", json=resource)
        assert r.status_code == 201, r.text
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"
    units = {it["productOrService"]["coding"][0]["code"]: Decimal(str(it["quantity"]["value"])) for it in claim["item"]}
    assert set(units) == set(FEES)
    charge = sum((FEES[c][0] * q for c, q in units.items()), Decimal(0))
    assert Decimal(str(claim["total"]["value"])) == charge

    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    [sent] = list((mailbox / "inbox").iterdir())
    x12 = sent.read_text()
    assert validate(x12.encode(), use_pyx12=True) == []
    segments = _segments(x12)
    [clm] = [s for s in segments if s[0] == "CLM"]
    assert Decimal(clm[2]) == charge
    sv1 = {s[1].split(s[1][2])[1]: Decimal(s[2]) for s in segments if s[0] == "SV1"}
    assert sv1 == {c: FEES[c][0] * q for c, q in units.items()}

    await payer_answers_and_collect(store, tenant, mailbox)
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) in ("paid", "partially-paid")
    eob = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()["entry"][0]["resource"]
    allowed = sum((Decimal(str(a["amount"]["value"])) for item in eob["item"] for a in item["adjudication"]
                   if a["category"]["coding"][0]["code"] == "eligible"), Decimal(0))
    assert allowed == sum((SANDBOX_ALLOWS[c] * q for c, q in units.items()), Decimal(0))
    expected = sum((FEES[c][1] * q for c, q in units.items()), Decimal(0))

    [task] = await _underpaid(api)
    assert task["status"] == "requested" and task["focus"] == {"reference": f"Claim/{claim['id']}"}
    assert task["for"] == claim["patient"] and task["businessStatus"]["text"] == "underpaid"
    facts = _inputs(task)
    assert Decimal(str(facts["difference"][0]["value"])) == expected - allowed > 0
    assert Decimal(str(facts["expected"][0]["value"])) == expected
    assert Decimal(str(facts["allowed"][0]["value"])) == allowed
    assert facts["explanation-of-benefit"] == [{"reference": f"ExplanationOfBenefit/{eob['id']}"}]
    assert len(facts["line"]) == 2

    # The same payment again, in a new envelope: a duplicate, and no second work item.
    [remit] = [p for p in (mailbox / "archive").iterdir() if p.name.startswith("835_")]
    data = remit.read_text()
    (mailbox / "outbox" / "835_again.x12").write_text(data.replace(data.split(data[3])[13], "987654321"))
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert [t["id"] for t in await _underpaid(api)] == [task["id"]]
    # Posting the remittance's claims again (a redelivery that got past the duplicate check) opens none.
    [rem] = decode(data.encode()).remittances
    with store.for_tenant(tenant).unit() as unit:
        assert underpayment.open_work_items(unit, rem, {rem.claims[0].patient_control_number: claim}, [eob]) == 0
    assert len(await _underpaid(api)) == 1


async def test_payment_at_or_above_the_contract_opens_nothing(api, store, tenant, payer_settings, mailbox: Path,
                                                               demo_bundle, route_to_sandbox):
    await load_practice(api, demo_bundle)
    for code in FEES:  # contracted exactly what the sandbox allows
        resource = definition(code, [], FEES[code][0], definition_id=f"fee-{code}-2026-11", start=date(2026, 11, 1),
                              expected={MEDICARE: SANDBOX_ALLOWS[code]})
        assert (await api.put(f"/fhir/ChargeItemDefinition/{resource['id']}", json=resource)).status_code == 201
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    await payer_answers_and_collect(store, tenant, mailbox)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) in ("paid", "partially-paid")
    assert await _underpaid(api) == []
