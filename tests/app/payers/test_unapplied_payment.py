"""An 835 payment for a claim that is none of ours is kept as an unapplied payment with a work
item, until a person links it to the claim it pays or returns it to the payer."""
from __future__ import annotations

from pathlib import Path

from app.payers.inbound import queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config

from tests.flows import NOW, adrain, history, lifecycle, queued_claim

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
APPLICATION = "https://therabridge.dev/fhir/StructureDefinition/payment-application"
PCN = "https://therabridge.dev/fhir/sid/patient-control-number"


def _mark(resource: dict) -> str | None:
    return next((e["valueCode"] for e in resource.get("extension", []) if e["url"] == APPLICATION), None)


async def _paid_under_another_number(api, store, tenant, payer_settings, mailbox: Path, demo_bundle) -> dict:
    """Alvarez's claim goes out; the payer's 835 pays it under a control number we never sent."""
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    await adrain(store)
    written = Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    pcn = next(i["value"] for i in claim["identifier"] if i["system"] == PCN)
    [remit] = [mailbox / "outbox" / name for name in written if name.startswith("835")]
    remit.write_text(remit.read_text().replace(pcn, "ZZ" + pcn[2:]))
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    return claim


async def _work_item(api) -> dict:  # type: ignore[no-untyped-def]
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODES}|payment-unapplied")).json()
    assert tasks["total"] == 1
    return tasks["entry"][0]["resource"]


async def test_a_payment_for_no_claim_of_ours_is_kept_unapplied_then_linked(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim = await _paid_under_another_number(api, store, tenant, payer_settings, mailbox, demo_bundle)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "accepted"  # nothing posted on it

    task = await _work_item(api)
    assert task["status"] == "requested"
    amount = next(i["valueMoney"] for i in task["input"] if i["type"]["text"] == "amount")
    eob_id = task["focus"]["reference"].split("/")[1]
    eob = (await api.get(f"/fhir/ExplanationOfBenefit/{eob_id}")).json()
    assert _mark(eob) == "unapplied" and "reference" not in eob["claim"]
    assert amount == eob["payment"]["amount"] and amount["value"] > 0
    recon = (await api.get("/fhir/PaymentReconciliation")).json()["entry"][0]["resource"]
    [detail] = [d for d in recon["detail"] if d["type"]["coding"][0]["code"] == "payment"]
    assert _mark(detail) == "unapplied"

    r = await api.post(f"/fhir/ExplanationOfBenefit/{eob_id}/$apply-payment", json={
        "resourceType": "Parameters", "parameter": [{"name": "claim", "valueReference": {"reference": f"Claim/{claim['id']}"}}]})
    assert r.status_code == 200, r.text
    assert _mark(r.json()) == "applied" and r.json()["claim"]["reference"] == f"Claim/{claim['id']}"
    posted = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(posted) in ("paid", "partially-paid") and "accepted" in history(posted)
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()["total"] == 1
    task = (await api.get(f"/fhir/Task/{task['id']}")).json()
    assert task["status"] == "completed" and task["businessStatus"]["text"] == "applied"
    recon = (await api.get(f"/fhir/PaymentReconciliation/{recon['id']}")).json()
    [detail] = [d for d in recon["detail"] if d["type"]["coding"][0]["code"] == "payment"]
    assert _mark(detail) == "applied" and detail["request"]["reference"] == f"Claim/{claim['id']}"

    again = await api.post(f"/fhir/ExplanationOfBenefit/{eob_id}/$apply-payment?claim=Claim/{claim['id']}")
    assert again.status_code == 409 and again.json()["issue"][0]["code"] == "conflict"


async def test_an_unapplied_payment_can_be_returned(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                                    route_to_sandbox):
    claim = await _paid_under_another_number(api, store, tenant, payer_settings, mailbox, demo_bundle)
    task = await _work_item(api)
    eob_id = task["focus"]["reference"].split("/")[1]
    missing = await api.post(f"/fhir/ExplanationOfBenefit/{eob_id}/$apply-payment")
    assert missing.status_code == 400 and missing.json()["issue"][0]["expression"] == ["claim"]
    r = await api.post(f"/fhir/ExplanationOfBenefit/{eob_id}/$return-payment?reason=not+our+patient")
    assert r.status_code == 200, r.text
    assert _mark(r.json()) == "returned"
    task = (await api.get(f"/fhir/Task/{task['id']}")).json()
    assert task["status"] == "completed" and task["businessStatus"]["text"] == "returned"
    assert task["output"][0]["valueString"] == "not our patient"
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "accepted"
    assert (await api.post(f"/fhir/ExplanationOfBenefit/{eob_id}/$return-payment")).status_code == 409
