"""fhir-payer: a pended PAS ClaimResponse (outcome queued) is followed up by ``inquire-claim``
jobs until the payer decides; here the workers' comp payer denies (no authorization, CO-197)."""
from __future__ import annotations

import copy

from app.payers.submission import queue_claim

from tests.flows import SANDBOX, adrain, claim_for, connect, history, jobs, lifecycle, load_practice, make_due

PCN = "https://therabridge.dev/fhir/sid/patient-control-number"


async def test_pended_claim_is_inquired_until_decided(api, store, tenant, payer_settings, demo_bundle,
                                                      route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-wc", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="workers-comp")
    await adrain(store)
    # A clean claim billed to the workers' comp member (the demo's own WC claim is held by the scrubber).
    claim = copy.deepcopy(await claim_for(api, "enc-alvarez-1"))
    claim.update(patient={"reference": "Patient/pat-kim"},
                 insurer={"reference": "Organization/payer-wc",
                          "identifier": {"system": "https://therabridge.dev/fhir/sid/payer-id", "value": "WCFUND"}},
                 identifier=[{"system": PCN, "value": "PENDWC" + tenant[-8:].upper()}])
    claim["insurance"][0]["coverage"] = {"reference": "Coverage/cov-kim"}
    with store.for_tenant(tenant).unit() as unit:
        unit.create({k: v for k, v in claim.items() if k not in ("id", "meta")}, rid=f"wc-{tenant}")
        assert queue_claim(unit, f"wc-{tenant}")[1] == 202
    await adrain(store)
    stored = (await api.get(f"/fhir/Claim/wc-{tenant}")).json()
    assert lifecycle(stored) == "accepted"  # pended at the payer
    assert [j.status for j in jobs(store, tenant, "inquire-claim")] == ["queued"]
    for _ in range(3):
        make_due(store, tenant)
        await adrain(store)
    stored = (await api.get(f"/fhir/Claim/wc-{tenant}")).json()
    assert lifecycle(stored) == "denied", history(stored)
    outcomes = sorted(e["resource"]["outcome"] for e in
                      (await api.get(f"/fhir/ClaimResponse?request=Claim/wc-{tenant}")).json()["entry"])
    assert outcomes == ["complete", "queued"]
