"""``serve --demo``'s payer side: the sandbox payer as a child process, the three demo payers with
auto-submit, and within seconds claims submitted, acknowledged, paid and denied, a supplement billed
after Medicare's payment, plus eligibility answers."""
from __future__ import annotations

import asyncio

from app import directory
from app.payers.demo import start_demo_payers, stop_children

from tests.flows import adrain, claim_for, history, lifecycle, load_practice, make_due


async def claims_of(api, patient: str) -> list[dict]:
    found = (await api.get(f"/fhir/Claim?patient=Patient/{patient}")).json()
    return [e["resource"] for e in found.get("entry", [])]


async def test_demo_practice_gets_paid(api, store, tenant, payer_settings, demo_bundle, tmp_path, route_to_live):
    settings = payer_settings.model_copy(update={"var_dir": str(tmp_path)})
    await load_practice(api, demo_bundle)
    try:
        lines = await asyncio.to_thread(start_demo_payers, settings, store, tenant)
        assert sum("auto-submit on" in line for line in lines) == 3
        await adrain(store)  # claims generated and auto-submitted, eligibility asked
        for _ in range(60):  # the sandbox answers every second; a busy CI machine may take a while
            await asyncio.sleep(0.5)
            make_due(store, tenant)
            await adrain(store)
            visits = ("enc-alvarez-1", "enc-alvarez-2", "enc-brooks-1", "enc-maxwell-1")
            states = [lifecycle(await claim_for(api, e)) for e in visits]
            okafor = await claims_of(api, "pat-okafor")
            states += [lifecycle(c) for c in okafor] + ["(no secondary yet)"] * (2 - len(okafor))
            if all(s in ("paid", "partially-paid", "denied") for s in states):
                break
        assert all(s in ("paid", "partially-paid", "denied") for s in states), states
        # Okafor: Medicare paid first, then the Acme supplement was billed (clearinghouse JSON) and paid.
        primary, second = sorted(okafor, key=lambda c: len(c["insurance"]))
        assert [i["coverage"]["reference"] for i in second["insurance"]] == \
            ["Coverage/cov-okafor-medicare", "Coverage/cov-okafor-supplement"]
        assert [i["focal"] for i in second["insurance"]] == [False, True]
        assert "submitted" in history(second)
        assert "acknowledged" in history(await claim_for(api, "enc-alvarez-1"))
        assert lifecycle(await claim_for(api, "enc-kim-1")) == "draft"  # held: missing authorization
        # Maxwell's visits are used up at the payer: a clean claim the payer denies
        assert lifecycle(await claim_for(api, "enc-maxwell-1")) == "denied", states
        coverages = [e for e in demo_bundle["entry"] if e["resource"]["resourceType"] == "Coverage"]
        assert (await api.get("/fhir/CoverageEligibilityResponse")).json()["total"] == len(coverages)
        await asyncio.to_thread(start_demo_payers, settings, store, tenant)  # a second start changes nothing
        assert len(directory.list_connections(store.engine, tenant)) == 3
    finally:
        stop_children()
