"""The claim's lifecycle, its history, its submission key and receipt are the server's: a client
that may write Claims cannot set them, and cannot change or delete a claim that has gone out."""
from __future__ import annotations

from pathlib import Path

from tests.flows import adrain, claim_for, history, lifecycle, load_practice, queued_claim

LIFECYCLE = "https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle"
HISTORY = "https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle-history"
RECEIPT = "https://therabridge.dev/fhir/StructureDefinition/claim-submission"
KEY = "https://therabridge.dev/fhir/sid/submission-key"


def _forged(claim: dict, code: str = "paid") -> dict:
    out = {k: v for k, v in claim.items() if k != "meta"}
    out["extension"] = [e for e in claim.get("extension", []) if e["url"] not in (LIFECYCLE, HISTORY, RECEIPT)] + [
        {"url": LIFECYCLE, "valueCode": code},
        {"url": HISTORY, "extension": [{"url": code, "valueInstant": "2026-11-05T10:00:00Z"}]},
        {"url": RECEIPT, "extension": [{"url": "key", "valueString": "forged"}]}]
    out["identifier"] = [*claim.get("identifier", []), {"system": KEY, "value": "forged"}]
    return out


def _keys(claim: dict) -> list[str]:
    return [i["value"] for i in claim.get("identifier", []) if i["system"] == KEY]


async def test_a_client_cannot_set_the_lifecycle(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"

    r = await api.put(f"/fhir/Claim/{claim['id']}", json=_forged(claim))
    assert r.status_code == 200, r.text
    stored = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(stored) == "clean" and history(stored) == [] and _keys(stored) == []
    assert not any(e["url"] == RECEIPT for e in stored.get("extension", []))
    assert (await api.get("/fhir/Claim?lifecycle=paid")).json()["total"] == 0

    created = await api.post("/fhir/Claim", json={k: v for k, v in _forged(claim).items() if k != "id"})
    assert created.status_code == 201, created.text
    assert lifecycle(created.json()) == "clean" and history(created.json()) == [] and _keys(created.json()) == []

    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _forged(claim, "denied"), "request": {"method": "PUT", "url": f"Claim/{claim['id']}"}}]}
    assert (await api.post("/fhir", json=bundle)).status_code == 200
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "clean"


async def test_a_client_written_claim_gets_the_scrubbers_verdict(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    broken = {k: v for k, v in claim.items() if k not in ("id", "meta")}
    broken["item"] = [{**broken["item"][0], "productOrService": {"coding": [
        {"system": "http://www.ama-assn.org/go/cpt", "code": "97999"}]}}]  # unlisted: the scrubber holds it
    r = await api.post("/fhir/Claim", json={**broken, "extension": [{"url": LIFECYCLE, "valueCode": "clean"}]})
    assert r.status_code == 201, r.text
    assert lifecycle(r.json()) == "draft"
    submit = await api.post(f"/fhir/Claim/{r.json()['id']}/$submit")
    assert submit.status_code == 422


async def test_a_claim_that_went_out_is_not_changed_or_deleted(api, store, tenant, payer_settings, mailbox: Path,
                                                               demo_bundle, route_to_sandbox):
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    await adrain(store)
    sent = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(sent) == "submitted"

    changed = {**sent, "total": {"value": 1.0, "currency": "USD"}}
    r = await api.put(f"/fhir/Claim/{sent['id']}", json=changed)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Claim"]
    assert "relationship prior" in r.json()["issue"][0]["diagnostics"]
    assert (await api.delete(f"/fhir/Claim/{sent['id']}")).status_code == 422
    forged = await api.put(f"/fhir/Claim/{sent['id']}", json=_forged(sent))  # the same claim, states forged
    assert forged.status_code == 200
    stored = (await api.get(f"/fhir/Claim/{sent['id']}")).json()
    assert lifecycle(stored) == "submitted" and history(stored) == history(sent) and _keys(stored) == _keys(sent)
    assert stored["total"] == sent["total"]
