"""A payer connection's terms shape the claims for that payer: the mapping profile registered
with it, and its timely-filing days (contract terms) in place of the profile's default."""
from __future__ import annotations

from tests.flows import adrain, claim_for, connect, lifecycle, load_practice


async def held_rules(api, claim: dict) -> set[str]:
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{claim['id']}")).json()
    return {i["type"]["text"] for e in tasks.get("entry", []) for i in e["resource"].get("input", [])}


async def test_timely_filing_days_of_the_connection_hold_a_late_claim(api, store, tenant, payer_settings,
                                                                      demo_bundle, mailbox):
    await load_practice(api, demo_bundle)  # Alvarez's visits are on 2026-11-03 and 2026-11-05
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            timely_filing_days=1)
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "draft" and claim["status"] == "draft"
    assert "TIMELY-FILING" in await held_rules(api, claim)


async def test_medicare_default_filing_limit_without_connection_terms(api, store, tenant, payer_settings,
                                                                      demo_bundle, mailbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "clean"  # twelve months from the date of service


async def test_the_connection_profile_is_the_one_billed_under(api, store, tenant, payer_settings, demo_bundle,
                                                              mailbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="workers-comp")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert lifecycle(claim) == "draft"
    assert {"WC-ACCIDENT", "PRIOR-AUTH-MISSING"} <= await held_rules(api, claim)
    # $scrub of the stored claim applies the same terms.
    outcome = (await api.post(f"/fhir/Claim/{claim['id']}/$scrub")).json()
    codes = {c["code"] for i in outcome.get("issue", []) for c in (i.get("details") or {}).get("coding", [])}
    assert "WC-ACCIDENT" in codes
