"""A visit changed after its claim was queued: while the claim waits in the queue it is rebuilt in
place (same claim, same place in the queue, the payer gets the new content once); once it is in a
batch on its way, it goes as it was, and the change becomes a new claim naming it once the payer
has numbered the claim (a replacement quotes that number)."""
from __future__ import annotations

from pathlib import Path

from app.jobs import Worker

from tests.flows import adrain, history, jobs, lifecycle, queued_claim

SUBMISSION_KEY = "https://therabridge.dev/fhir/sid/submission-key"


def _key(claim: dict) -> str | None:
    return next((i["value"] for i in claim.get("identifier", []) if i["system"] == SUBMISSION_KEY), None)


async def _claims(api, encounter: str) -> list[dict]:  # type: ignore[no-untyped-def]
    bundle = (await api.get(f"/fhir/Claim?encounter=Encounter/{encounter}")).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def _shorten_last_procedure(api) -> None:  # type: ignore[no-untyped-def]
    """The EHR corrects the visit: the therapeutic activities took 13 minutes, not 23 (1 unit, not 2)."""
    proc = (await api.get("/fhir/Procedure/enc-alvarez-1-p2")).json()
    proc["performedPeriod"]["end"] = "2026-11-03T09:58:00-06:00"
    r = await api.put("/fhir/Procedure/enc-alvarez-1-p2", json=proc)
    assert r.status_code == 200, r.text


def _clm02(mailbox: Path) -> list[str]:
    """CLM02 (the claim's total charge) of every claim in the 837P files the payer received."""
    out = []
    for f in sorted((mailbox / "inbox").iterdir()):
        text = f.read_text()
        element, terminator = text[3], text[105]  # ISA is fixed width
        out += [seg.strip().split(element)[2] for seg in text.split(terminator)
                if seg.strip().startswith("CLM" + element)]
    return out


async def test_a_queued_claim_is_rebuilt_in_place(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                                  route_to_sandbox):
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    key = _key(claim)

    await _shorten_last_procedure(api)
    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim")
    assert r.status_code == 200, r.text
    claims = await _claims(api, "enc-alvarez-1")
    assert [c["id"] for c in claims] == [claim["id"]]  # the same claim, not a replacement
    rebuilt = claims[0]
    assert lifecycle(rebuilt) == "queued" and _key(rebuilt) == key and "related" not in rebuilt
    assert rebuilt["total"]["value"] < claim["total"]["value"]

    await adrain(store)
    sent = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(sent) == "submitted"
    assert [float(v) for v in _clm02(mailbox)] == [rebuilt["total"]["value"]]  # the payer got the new content, once
    assert [j.status for j in jobs(store, tenant, "submit-claims")] == ["done"]


async def test_a_queued_claim_that_becomes_held_leaves_the_queue(api, store, tenant, payer_settings, mailbox: Path,
                                                                 demo_bundle, route_to_sandbox):
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)

    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim?profile=no-such-profile")
    assert r.status_code == 400  # a bad request changes nothing
    proc = (await api.get("/fhir/Procedure/enc-alvarez-1-p1")).json()
    proc["code"]["coding"][0]["code"] = "99999"  # not a code the practice bills: the claim is held
    assert (await api.put("/fhir/Procedure/enc-alvarez-1-p1", json=proc)).status_code == 200
    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim")
    assert r.status_code == 200, r.text
    [held] = await _claims(api, "enc-alvarez-1")
    assert held["id"] == claim["id"] and lifecycle(held) == "draft" and _key(held) is None
    assert "queued" in history(held)

    await adrain(store)
    assert not (mailbox / "inbox").exists() or not list((mailbox / "inbox").iterdir())  # nothing went
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "draft"


async def test_a_claim_on_its_way_is_not_rebuilt(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                                 route_to_sandbox):
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    assert Worker(store, batch=1).run_once() == 1  # the claim's batch is formed: it is on its way

    await _shorten_last_procedure(api)
    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim")
    # The correction must quote the payer's number for the claim on its way, which it has not
    # given yet: refused, and nothing is stored (it is generated again once the payer answered).
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == ["Claim.related.reference"]
    claims = {c["id"]: c for c in await _claims(api, "enc-alvarez-1")}
    assert list(claims) == [claim["id"]]
    assert lifecycle(claims[claim["id"]]) == "queued" and claims[claim["id"]]["total"] == claim["total"]

    await adrain(store)
    assert [float(v) for v in _clm02(mailbox)] == [claim["total"]["value"]]  # the original went as it was
