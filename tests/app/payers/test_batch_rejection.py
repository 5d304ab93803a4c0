"""A 277CA that rejects above the claim level (the whole batch at the submitter, every claim of one
billing provider) names none of the claims: each claim of ours it stands for is rejected with the
reasons, and the biller is told in one Task."""
from __future__ import annotations

from pathlib import Path

from app.payers.inbound import queue_collection
from tests.payer_adapters.x12.envelopes import interchange

from tests.flows import adrain, claim_for, history, lifecycle, medicare_practice

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
SOURCE = ["BHT*0085*08*REJ0001*20261123*0900*TH", "HL*1**20*1", "NM1*AY*2*CLEARINGHOUSE*****46*CH01",
          "TRN*1*REJ0001", "DTP*050*D8*20261123", "DTP*009*D8*20261123"]


async def _both_sent(api, store, tenant, settings, mailbox: Path, bundle) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """Alvarez's two visits go to Medicare in one 837P: (their claim ids, the set's BHT03)."""
    await medicare_practice(api, store, tenant, settings, mailbox, bundle)
    ids = [(await claim_for(api, enc))["id"] for enc in ("enc-alvarez-1", "enc-alvarez-2")]
    for cid in ids:
        assert (await api.post(f"/fhir/Claim/{cid}/$submit")).status_code == 202
    await adrain(store)
    [sent] = list((mailbox / "inbox").iterdir())
    text = sent.read_text()
    element, terminator = text[3], text[105]
    [bht] = [s.strip() for s in text.split(terminator) if s.strip().startswith("BHT" + element)]
    return ids, bht.split(element)[3]


async def _answer(store, tenant, mailbox: Path, body: list[str]) -> None:  # type: ignore[no-untyped-def]
    (mailbox / "outbox" / "277CA_rejected.x12").write_text(interchange("HN", "005010X214", "277", [SOURCE + body]))
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)


async def _task(api) -> dict:  # type: ignore[no-untyped-def]
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODES}|claim-batch-rejected")).json()
    assert tasks["total"] == 1
    return tasks["entry"][0]["resource"]


async def test_a_batch_rejected_at_the_submitter_rejects_each_of_its_claims(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    ids, batch = await _both_sent(api, store, tenant, payer_settings, mailbox, demo_bundle)
    await _answer(store, tenant, mailbox, [
        "HL*2*1*21*0", "NM1*41*2*THERABRIDGE*****46*TB0001", f"TRN*2*{batch}",
        "STC*A3:24:41*20261123*U*250", "QTY*AA*2", "AMT*YY*250"])
    for cid in ids:
        claim = (await api.get(f"/fhir/Claim/{cid}")).json()
        assert lifecycle(claim) == "rejected" and "submitted" in history(claim)
        [response] = (await api.get(f"/fhir/ClaimResponse?request=Claim/{cid}")).json()["entry"]
        assert response["resource"]["outcome"] == "error" and "2200B" in response["resource"]["disposition"]
    task = await _task(api)
    assert sorted(i["valueReference"]["reference"] for i in task["input"] if "valueReference" in i) == sorted(
        f"Claim/{cid}" for cid in ids)
    assert "whole batch" in task["description"] and "2 claim(s)" in task["description"]
    assert any("A3" in i.get("valueString", "") or "24" in i.get("valueString", "") for i in task["input"])


async def test_a_billing_provider_rejection_rejects_only_that_providers_claims(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    ids, batch = await _both_sent(api, store, tenant, payer_settings, mailbox, demo_bundle)
    receiver = ["HL*2*1*21*1", "NM1*41*2*THERABRIDGE*****46*TB0001", f"TRN*2*{batch}", "STC*A1:19:PR*20261123*WQ*250"]
    await _answer(store, tenant, mailbox, receiver + [
        "HL*3*2*19*0", "NM1*85*2*SOMEONE ELSE*****XX*1999999984", "TRN*1*PROV1", "STC*A3:24:85*20261123*U*250"])
    for cid in ids:
        assert lifecycle((await api.get(f"/fhir/Claim/{cid}")).json()) == "submitted"  # not their provider
    assert "no submitted claim of ours" in (await _task(api))["description"]

    await _answer(store, tenant, mailbox, receiver + [
        "HL*3*2*19*0", "NM1*85*2*DEMO PRACTICE*****XX*1345678902", "TRN*1*PROV2", "STC*A3:24:85*20261123*U*250"])
    for cid in ids:
        assert lifecycle((await api.get(f"/fhir/Claim/{cid}")).json()) == "rejected"
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODES}|claim-batch-rejected")).json()["entry"]
    assert any("billing provider 1345678902" in t["resource"]["description"] for t in tasks)
