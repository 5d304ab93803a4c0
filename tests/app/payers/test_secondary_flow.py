"""Coordination of benefits end to end with the sandbox payer: Medicare's 835 leaves the patient a
balance → the server bills the supplemental by itself (837P SBR01=S with 2320/2330A/2330B/2430,
balanced, pyx12-clean) → the sandbox pays the rest; the same 835 again makes no second claim; a
Medicare answer that says the claim crossed over sends nothing and records why."""
from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.payers import secondary
from app.payers.inbound import messages, queue_collection
from fhir_mappings.vocabulary import CLAIM_CROSSOVER, PAYER_CLAIM_NUMBER, TASK_CODE
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import ClaimPayment, Remittance, decode, validate

from tests.flows import NOW, adrain, claim_for, connect, history, lifecycle, load_practice


def _with_supplemental(demo_bundle: dict[str, Any], medicare_member: str = "1EG4TE5MK73") -> dict[str, Any]:
    """The demo practice, Rosa Alvarez with Medicare (order 1) and an Acme supplement (order 2)."""
    bundle = copy.deepcopy(demo_bundle)
    medicare = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "cov-alvarez")
    medicare["order"] = 1
    medicare["subscriberId"] = medicare_member
    supplement = copy.deepcopy(medicare)
    supplement.update(id="cov-alvarez-supp", order=2, subscriberId="ACMSUPP00001",
                      payor=[{"reference": "Organization/payer-acme"}],
                      type={"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/x12-claim-filing-indicator",
                                        "code": "CI"}]})
    bundle["entry"].append({"fullUrl": "Coverage/cov-alvarez-supp", "resource": supplement,
                            "request": {"method": "PUT", "url": "Coverage/cov-alvarez-supp"}})
    return bundle


async def _collect(store: Any, tenant: str) -> None:
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)


def _segments(data: bytes) -> list[list[str]]:
    return [s.strip().split("*") for s in data.decode().split("~") if s.strip()]


async def _practice(api, store, tenant, settings, root: Path, bundle: dict[str, Any]) -> tuple[Mailbox, Mailbox]:
    await load_practice(api, bundle)
    connect(store, settings, tenant, "payer-medicare", "x12-directory", {"root": str(root / "mcr")}, profile="medicare")
    connect(store, settings, tenant, "payer-acme", "x12-directory", {"root": str(root / "acme")}, profile="commercial",
            auto_submit=True)
    await adrain(store)
    engine = Engine(load_config())  # one payer ledger behind both mailboxes
    return Mailbox(root / "mcr", engine, use_pyx12=False), Mailbox(root / "acme", engine, use_pyx12=False)


async def _claims_of(api, patient: str) -> list[dict[str, Any]]:
    found = (await api.get(f"/fhir/Claim?patient=Patient/{patient}&_count=100")).json()
    return [e["resource"] for e in found.get("entry", [])]


async def test_primary_partial_payment_bills_the_secondary_which_the_sandbox_pays(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    mcr, acme = await _practice(api, store, tenant, payer_settings, mailbox, _with_supplemental(demo_bundle))
    primary = await claim_for(api, "enc-alvarez-1")
    assert [i["sequence"] for i in primary["insurance"]] == [1]  # the primary claim is unchanged
    assert (await api.post(f"/fhir/Claim/{primary['id']}/$submit")).status_code == 202
    await adrain(store)
    assert [w.split("_")[0] for w in mcr.process(NOW)] == ["999", "277CA", "835"]
    await _collect(store, tenant)

    primary = (await api.get(f"/fhir/Claim/{primary['id']}")).json()
    assert lifecycle(primary) in ("paid", "partially-paid")
    eob = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{primary['id']}")).json()["entry"][0]["resource"]
    icn = next(i["value"] for i in eob["identifier"] if i["system"] == PAYER_CLAIM_NUMBER)
    paid = Decimal(str(eob["payment"]["amount"]["value"]))
    owed = next(Decimal(str(t["amount"]["value"])) for t in eob["total"]
                if t["category"]["coding"][0]["code"] == "patient-responsibility")
    assert paid > 0 and owed > 0  # Medicare left the patient a balance (deductible + 20 %)

    # The claim to the supplement: made, scrubbed clean, queued and sent by the normal pipeline.
    to_acme = [c for c in await _claims_of(api, "pat-alvarez") if c["insurer"]["reference"] == "Organization/payer-acme"]
    assert len(to_acme) == 1
    second = to_acme[0]
    assert lifecycle(second) == "submitted" and {"queued", "submitted"} <= set(history(second))
    assert [(i["sequence"], i["focal"], i["coverage"]["reference"]) for i in second["insurance"]] == [
        (1, False, "Coverage/cov-alvarez"), (2, True, "Coverage/cov-alvarez-supp")]
    assert second["related"][0]["claim"]["reference"] == f"Claim/{primary['id']}"
    assert [i["net"] for i in second["item"]] == [i["net"] for i in primary["item"]]
    response = (await api.get(f"/fhir/{second['insurance'][0]['claimResponse']['reference']}")).json()
    assert response["request"]["reference"] == f"Claim/{primary['id']}"
    assert Decimal(str(response["payment"]["amount"]["value"])) == paid
    assert any(a.get("extension") and a["extension"][0]["valueCode"] == "PR"
               for item in response["item"] for a in item["adjudication"])

    # The 837P to Acme: SBR*S, 2320 for Medicare, balanced, and pyx12 accepts it.
    # (Acme auto-submits: the demo's own Acme claims went too, each in its own file.)
    [data] = [p.read_bytes() for p in (mailbox / "acme" / "inbox").iterdir() if b"ACMSUPP00001" in p.read_bytes()]
    assert validate(data) == []  # our checks plus pyx12
    segs = _segments(data)
    sbr = [s for s in segs if s[0] == "SBR"]
    assert [s[1] for s in sbr] == ["S", "P"] and sbr[1][9] == "MB"
    clm02 = Decimal(next(s for s in segs if s[0] == "CLM")[2])
    amt_d = Decimal(next(s for s in segs if s[:2] == ["AMT", "D"])[2])
    amt_eaf = Decimal(next(s for s in segs if s[:2] == ["AMT", "EAF"])[2])
    assert (amt_d, amt_eaf) == (paid, owed)
    pr_loops = [s for s in segs if s[:2] == ["NM1", "PR"]]
    assert [s[9] for s in pr_loops] == ["ACME01", "MCRDEMO"]
    assert [s for s in segs if s[:2] == ["REF", "F8"]] == [["REF", "F8", icn]]
    assert len([s for s in segs if s[:2] == ["NM1", "IL"]]) == 2  # 2010BA and 2330A
    line_cas, lines = Decimal(0), []
    current: dict[str, Any] | None = None
    for s in segs:
        if s[0] == "SV1":
            current = {"charge": Decimal(s[2]), "paid": None, "cas": Decimal(0)}
            lines.append(current)
        elif s[0] == "SVD" and current is not None:
            current["paid"] = Decimal(s[2])
            assert s[1] == "MCRDEMO"
        elif s[0] == "CAS" and current is not None and current["paid"] is not None:
            amounts = sum(Decimal(s[i]) for i in range(3, len(s), 3) if s[i])
            current["cas"] += amounts
            line_cas += amounts
    assert lines and all(ln["charge"] == ln["paid"] + ln["cas"] for ln in lines)  # SV102 = SVD02 + Σ 2430 CAS
    assert clm02 == amt_d + line_cas  # CLM02 = AMT*D + Σ CAS (no claim-level CAS here)
    assert sum(s for s in (ln["paid"] for ln in lines)) == amt_d
    assert len([s for s in segs if s[:2] == ["DTP", "573"]]) == len(lines)  # at line level only

    # The supplement pays the rest of what Medicare left, up to its allowed amount.
    assert "835" in [w.split("_")[0] for w in acme.process(NOW)]
    await _collect(store, tenant)
    second = (await api.get(f"/fhir/Claim/{second['id']}")).json()
    assert lifecycle(second) in ("paid", "partially-paid")
    eob2 = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{second['id']}")).json()["entry"][0]["resource"]
    assert eob2["extension"][0]["valueCoding"]["code"] == "2"  # processed as secondary
    assert eob2["insurance"][0]["coverage"]["reference"] == "Coverage/cov-alvarez-supp"  # the payer that paid
    assert 0 < Decimal(str(eob2["payment"]["amount"]["value"])) <= owed
    # No third coverage: nothing more is billed.
    assert len(await _claims_of(api, "pat-alvarez")) == 3  # two visits' primaries + one secondary

    # The same 835 again (a new envelope) is a duplicate; replaying its posting makes no claim.
    raw = next((mailbox / "mcr" / "archive").glob("835_*")).read_text()
    isa13 = raw.split(raw[3])[13]
    (mailbox / "mcr" / "outbox" / "835_again.x12").write_text(raw.replace(isa13, "987654321"))
    await _collect(store, tenant)
    assert [m["status"] for m in messages(store, tenant) if m["name"].endswith("835_again.x12")] == ["duplicate"]
    [rem] = decode(raw.encode()).remittances
    with store.for_tenant(tenant).unit() as unit:
        secondary.after_payment(unit, rem, rem.claims[0], primary)
    assert len([c for c in await _claims_of(api, "pat-alvarez")
                if c["insurer"]["reference"] == "Organization/payer-acme"]) == 1
    assert acme.engine.ledger.summary()["by_member"]["ACMSUPP00001"] == 1
    assert list((mailbox / "acme" / "inbox").iterdir()) == []


async def test_medicare_crossover_sends_no_secondary_and_records_why(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    bundle = _with_supplemental(demo_bundle, medicare_member="MCRXOVER0001")
    mcr, acme = await _practice(api, store, tenant, payer_settings, mailbox, bundle)
    primary = await claim_for(api, "enc-alvarez-1")
    assert (await api.post(f"/fhir/Claim/{primary['id']}/$submit")).status_code == 202
    await adrain(store)
    mcr.process(NOW)
    remit = next((mailbox / "mcr" / "outbox").glob("835_*")).read_text()
    assert "CLP*" in remit and "NM1*TT*2*ACME HEALTH PLAN" in remit and "MOA***MA18" in remit
    await _collect(store, tenant)

    primary = (await api.get(f"/fhir/Claim/{primary['id']}")).json()
    assert lifecycle(primary) in ("paid", "partially-paid")
    crossover = next(e for e in primary["extension"] if e["url"] == CLAIM_CROSSOVER)
    parts = {e["url"]: e for e in crossover["extension"]}
    assert parts["reason"]["valueString"].startswith("835 CLP02 19")
    assert parts["coverage"]["valueReference"]["reference"] == "Coverage/cov-alvarez-supp"
    assert "ACME HEALTH PLAN" in parts["payer"]["valueString"]
    assert [c for c in await _claims_of(api, "pat-alvarez") if c["insurer"]["reference"] == "Organization/payer-acme"] == []
    assert not any(b"MCRXOVER0001" in p.read_bytes() or b"ACMSUPP00001" in p.read_bytes()
                   for p in (mailbox / "acme" / "inbox").iterdir())
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODE}|await-crossover")).json()
    assert tasks["total"] == 1 and tasks["entry"][0]["resource"]["focus"]["reference"] == f"Claim/{primary['id']}"

    # The crossover record is the server's: a client's update cannot remove it.
    client_copy = {k: v for k, v in primary.items() if k != "meta"}
    client_copy["extension"] = [e for e in primary["extension"] if e["url"] != CLAIM_CROSSOVER]
    await api.put(f"/fhir/Claim/{primary['id']}", json=client_copy)
    primary = (await api.get(f"/fhir/Claim/{primary['id']}")).json()
    assert any(e["url"] == CLAIM_CROSSOVER for e in primary["extension"])
    assert acme.engine.ledger.summary()["by_member"] == {"MCRXOVER0001": 1}


async def test_tertiary_claim_follows_the_secondarys_835(api, store, tenant, payer_settings, mailbox: Path,
                                                         demo_bundle, route_to_sandbox):
    """Medicare, then a supplement paying half of what is left, then a gap plan: after the
    supplement's 835 the server bills the third payer with both prior payers in order."""
    bundle = _with_supplemental(demo_bundle)
    supplement = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "cov-alvarez-supp")
    supplement["subscriberId"] = "ACMSUPP00002"  # coinsurance 50 %: leaves a balance
    gap = copy.deepcopy(supplement)
    gap.update(id="cov-alvarez-gap", order=3, subscriberId="GAP000000001", payor=[{"reference": "Organization/payer-gap"}])
    org = {"resourceType": "Organization", "id": "payer-gap", "active": True, "name": "Gap Supplement Plan",
           "identifier": [{"system": "https://therabridge.dev/fhir/sid/payer-id", "value": "GAPPLAN"}]}
    for r in (org, gap):
        bundle["entry"].append({"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
                                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}})
    mcr, acme = await _practice(api, store, tenant, payer_settings, mailbox, bundle)
    connect(store, payer_settings, tenant, "payer-gap", "x12-directory", {"root": str(mailbox / "gap")},
            profile="commercial", auto_submit=True)
    gap_box = Mailbox(mailbox / "gap", acme.engine, use_pyx12=False)
    primary = await claim_for(api, "enc-alvarez-1")
    assert (await api.post(f"/fhir/Claim/{primary['id']}/$submit")).status_code == 202
    await adrain(store)
    mcr.process(NOW)
    await _collect(store, tenant)
    acme.process(NOW)
    await _collect(store, tenant)

    claims = await _claims_of(api, "pat-alvarez")
    [second] = [c for c in claims if c["insurer"]["reference"] == "Organization/payer-acme"]
    [third] = [c for c in claims if c["insurer"]["reference"] == "Organization/payer-gap"]
    assert lifecycle(second) in ("paid", "partially-paid") and lifecycle(third) == "submitted"
    assert [(i["sequence"], i["focal"], i["coverage"]["reference"], "claimResponse" in i) for i in third["insurance"]] == [
        (1, False, "Coverage/cov-alvarez", True), (2, False, "Coverage/cov-alvarez-supp", True),
        (3, True, "Coverage/cov-alvarez-gap", False)]
    assert third["insurance"][0]["claimResponse"] == second["insurance"][0]["claimResponse"]
    [data] = [p.read_bytes() for p in (mailbox / "gap" / "inbox").iterdir()]
    assert validate(data) == []
    segs = _segments(data)
    assert [s[1] for s in segs if s[0] == "SBR"] == ["T", "P", "S"]
    assert [s[9] for s in segs if s[:2] == ["NM1", "PR"]] == ["GAPPLAN", "MCRDEMO", "ACME01"]
    assert len([s for s in segs if s[:2] == ["REF", "F8"]]) == 2

    assert "835" in [w.split("_")[0] for w in gap_box.process(NOW)]
    await _collect(store, tenant)
    third = (await api.get(f"/fhir/Claim/{third['id']}")).json()
    assert lifecycle(third) in ("paid", "partially-paid")
    eob = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{third['id']}")).json()["entry"][0]["resource"]
    assert eob["extension"][0]["valueCoding"]["code"] == "3"  # processed as tertiary
    assert len([c for c in await _claims_of(api, "pat-alvarez")]) == 4  # nothing after the last coverage


async def test_paid_in_full_bills_no_one_else_and_crossover_signals_are_each_enough(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    from payer_adapters.x12.decode_835 import Adjustment, ServicePayment

    await _practice(api, store, tenant, payer_settings, mailbox, _with_supplemental(demo_bundle))
    primary = await claim_for(api, "enc-alvarez-1")
    rem = Remittance(header=None)  # type: ignore[arg-type]
    rem.payment_date, rem.trace_number, rem.payer_id = "2026-11-20", "EFTFULL", "MCRDEMO"
    total = sum(Decimal(str(i["net"]["value"])) for i in primary["item"])
    full = ClaimPayment(primary["identifier"][0]["value"], "1", total, total, Decimal(0), "MB", "ICN1", "11", "1")
    with store.for_tenant(tenant).unit() as unit:
        secondary.after_payment(unit, rem, full, primary)
    assert [c for c in await _claims_of(api, "pat-alvarez") if c["insurer"]["reference"] != "Organization/payer-medicare"] == []

    owed = ClaimPayment("X", "1", Decimal(100), Decimal(80), Decimal(20), "MB", "ICN2", "11", "1")
    owed.services = [ServicePayment("HC", "97110", ["GO"], Decimal(100), Decimal(80), Decimal(1))]
    owed.services[0].adjustments = [Adjustment("PR", "2", Decimal(20))]
    assert secondary.crossover_reason(owed) is None
    owed.services[0].remarks = ["N89"]
    assert "N89" in (secondary.crossover_reason(owed) or "")
    owed.services[0].remarks = []
    owed.crossover_payer = ("ACME HEALTH PLAN", "ACME01")
    assert "NM1*TT" in (secondary.crossover_reason(owed) or "")
    owed.crossover_payer, owed.status = None, "20"
    assert "CLP02 20" in (secondary.crossover_reason(owed) or "")


async def test_regenerating_the_visit_leaves_the_secondary_claim_alone(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    """A secondary claim not sent yet (its payer does not auto-submit) is the payer side's: a new
    generation of the visit corrects the primary claim and neither rebuilds nor names it."""
    await load_practice(api, _with_supplemental(demo_bundle))
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox / "mcr")},
            profile="medicare")
    connect(store, payer_settings, tenant, "payer-acme", "x12-directory", {"root": str(mailbox / "acme")},
            profile="commercial")
    await adrain(store)
    primary = await claim_for(api, "enc-alvarez-1")
    assert (await api.post(f"/fhir/Claim/{primary['id']}/$submit")).status_code == 202
    await adrain(store)
    Mailbox(mailbox / "mcr", Engine(load_config()), use_pyx12=False).process(NOW)
    await _collect(store, tenant)
    [second] = [c for c in await _claims_of(api, "pat-alvarez") if c["insurer"]["reference"] == "Organization/payer-acme"]
    assert lifecycle(second) == "clean" and second["status"] == "active"  # waits for a person's $submit

    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim")
    assert r.status_code in (200, 201), r.text
    corrected = next(e["resource"] for e in r.json()["entry"] if e["resource"]["resourceType"] == "Claim")
    assert corrected["id"] not in (primary["id"], second["id"])
    assert corrected["insurer"]["reference"] == "Organization/payer-medicare"
    assert corrected["related"][0]["claim"]["reference"] == f"Claim/{primary['id']}"
    assert (await api.get(f"/fhir/Claim/{second['id']}")).json()["meta"]["versionId"] == second["meta"]["versionId"]


async def test_a_payer_apis_answer_bills_the_secondary_too(api, store, tenant, payer_settings, mailbox: Path,
                                                          demo_bundle, route_to_sandbox):
    """Medicare answers through its FHIR API (Claim/$submit, a ClaimResponse): the supplement's
    claim follows that answer as it follows an 835, carrying the ClaimResponse as the prior
    payer's adjudication into its 837P (2320/2430 balanced, pyx12-clean), and the sandbox pays it."""
    from tests.flows import SANDBOX

    await load_practice(api, _with_supplemental(demo_bundle))
    connect(store, payer_settings, tenant, "payer-medicare", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="medicare", auto_submit=True)
    connect(store, payer_settings, tenant, "payer-acme", "x12-directory", {"root": str(mailbox / "acme")},
            profile="commercial", auto_submit=True)
    await adrain(store)
    [primary] = [e["resource"] for e in (await api.get("/fhir/Claim?encounter=Encounter/enc-alvarez-1"
                                                       "&insurer=Organization/payer-medicare")).json()["entry"]]
    assert lifecycle(primary) in ("paid", "partially-paid"), history(primary)
    [response] = [e["resource"] for e in
                  (await api.get(f"/fhir/ClaimResponse?request=Claim/{primary['id']}")).json()["entry"]]
    paid = Decimal(str(response["payment"]["amount"]["value"]))
    owed = sum((Decimal(str(a["amount"]["value"])) for i in response["item"] for a in i["adjudication"]
                if a["category"]["coding"][0]["code"] == "PR"), Decimal(0))
    assert paid > 0 and owed > 0

    [second] = [c for c in await _claims_of(api, "pat-alvarez")
                if c["insurer"]["reference"] == "Organization/payer-acme"
                and c["related"][0]["claim"]["reference"] == f"Claim/{primary['id']}"]
    assert lifecycle(second) == "submitted"
    assert second["insurance"][0]["claimResponse"]["reference"] == f"ClaimResponse/{response['id']}"
    [data] = [p.read_bytes() for p in (mailbox / "acme" / "inbox").iterdir() if b"ACMSUPP00001" in p.read_bytes()]
    assert validate(data) == []  # our checks plus pyx12
    segs = _segments(data)
    pcn = second["identifier"][0]["value"]
    start = next(n for n, s in enumerate(segs) if s[:2] == ["CLM", pcn])
    mine = segs[start:next((n for n, s in enumerate(segs) if n > start and s[0] in ("HL", "SE")), len(segs))]
    assert [s[1] for s in segs[:start] if s[0] == "SBR"][-1] == "S"  # this claim's subscriber loop
    assert [s[1] for s in mine if s[0] == "SBR"] == ["P"]  # 2320: Medicare, the primary
    assert Decimal(next(s for s in mine if s[:2] == ["AMT", "D"])[2]) == paid
    assert [s[9] for s in mine if s[:2] == ["NM1", "PR"]] == ["MCRDEMO"]
    number = next(i["value"] for i in response["identifier"] if i["system"] == PAYER_CLAIM_NUMBER)
    assert [s for s in mine if s[:2] == ["REF", "F8"]] == [["REF", "F8", number]]
    svd = [s for s in mine if s[0] == "SVD"]
    assert svd and sum(Decimal(s[2]) for s in svd) == paid  # 2430: what Medicare paid per line

    # Acme pays what Medicare left; the same answer posted again makes no second claim.
    acme = Mailbox(mailbox / "acme", Engine(load_config()), use_pyx12=False)
    assert "835" in [w.split("_")[0] for w in acme.process(NOW)]
    await _collect(store, tenant)
    second = (await api.get(f"/fhir/Claim/{second['id']}")).json()
    assert lifecycle(second) in ("paid", "partially-paid")
    eob = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{second['id']}")).json()["entry"][0]["resource"]
    assert 0 < Decimal(str(eob["payment"]["amount"]["value"])) <= owed
    from app.payers import posting
    with store.for_tenant(tenant).unit() as unit:
        posting.post_claim_response(unit, unit.read("Claim", primary["id"]).resource(), response, source="again")
    assert len([c for c in await _claims_of(api, "pat-alvarez")
                if c["insurer"]["reference"] == "Organization/payer-acme"
                and c["related"][0]["claim"]["reference"] == f"Claim/{primary['id']}"]) == 1
