"""The KPIs over claims that went through the real workflow and the sandbox payer: a Medicare
claim denied for a missing authorization (CO-197), then its paid replacement. The facts the
writes kept equal a rebuild from the stored resources."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from app.measures import facts
from tests.app.payers.test_denials_flow import answer, denied_claim, require_auth
from tests.flows import adrain, claim_for

YEARS = "periodStart=2026-01-01&periodEnd=2027-12-31"


def counts(report: dict[str, Any], group: int = 0) -> tuple[int, int]:
    pops = {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][group]["population"]}
    return pops.get("numerator", 0), pops.get("denominator", pops.get("measure-population", 0))


async def kpi(api, mid: str, extra: str = "") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = await api.get(f"/fhir/Measure/{mid}/$evaluate-measure?{YEARS}{extra}")
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_denied_claim_and_its_paid_replacement(api, store, tenant, payer_settings, mailbox: Path,
                                                       demo_bundle, route_to_sandbox):
    claim, payer, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, require_auth)
    assert (await kpi(api, "denial-rate"))["group"][0]["measureScore"]["value"] == 1.0
    assert counts(await kpi(api, "authorization-rate")) == (0, 1)  # the payer said it needed one; none quoted

    for benefit in payer.engine.data["members"]["1EG4TE5MK73"]["benefits"].values():
        benefit["auth_required"] = False
    proc = (await api.get("/fhir/Procedure/enc-alvarez-1-p2")).json()
    proc["performedPeriod"]["end"] = "2026-11-03T09:58:00-06:00"
    assert (await api.put("/fhir/Procedure/enc-alvarez-1-p2", json=proc)).status_code == 200
    await adrain(store)
    correction = await claim_for(api, "enc-alvarez-1")
    assert correction["id"] != claim["id"]
    assert (await api.post(f"/fhir/Claim/{correction['id']}/$submit")).status_code == 202
    await adrain(store)
    await answer(store, tenant, payer)
    assert (await api.get(f"/fhir/Claim/{correction['id']}")).json()["extension"]

    denial = await kpi(api, "denial-rate", "&reportType=subject-list")
    assert counts(denial) == (1, 2)
    lists = {c["id"]: [e["item"]["reference"] for e in c.get("entry", [])] for c in denial["contained"]}
    assert lists["numerator"] == [f"Claim/{claim['id']}"]
    dollars = denial["group"][1]
    assert dollars["population"][2]["extension"][0]["valueMoney"]["value"] == claim["total"]["value"]
    assert counts(await kpi(api, "first-pass-yield")) == (0, 2)  # the paid one is a replacement
    assert counts(await kpi(api, "clean-claim-rate")) == (2, 2)  # both left untouched and were accepted
    ar = await kpi(api, "aged-ar-over-90")
    assert counts(ar) == (0, 0)  # the original was replaced, the replacement paid
    dtp = (await kpi(api, "days-to-payment"))["group"][0]
    assert dtp["population"][1]["count"] == 1 and dtp["measureScore"]["value"] >= 0

    ts = store.for_tenant(tenant)
    with ts.reading() as reader:
        written = facts.snapshot(reader)
    assert len([r for r in written["claim_fact"] if r[11] is not None]) == 2 and written["remit_fact"]  # 2 sent
    with ts.unit() as unit:
        facts.rebuild(unit)
    with ts.reading() as reader:
        rebuilt = facts.snapshot(reader)
    for table in written:
        diff = sorted(set(rebuilt[table]) ^ set(written[table]), key=str)
        assert not diff, "\n".join(map(str, diff))
