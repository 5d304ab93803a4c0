"""Auto-submit over the API adapters: clearinghouse-json (reports collected) and fhir-payer
(PAS-style synchronous ClaimResponse), against the sandbox payer."""
from __future__ import annotations

from decimal import Decimal

from app.payers import posting, reversals
from app.payers.inbound import messages, queue_collection
from payer_adapters.x12.codes import GROUP_SYSTEM

from tests.flows import MEDICARE_VISITS, SANDBOX, adrain, claim_for, connect, history, jobs, lifecycle, load_practice


async def test_clearinghouse_json_auto_submit_and_reports(api, store, tenant, payer_settings, demo_bundle,
                                                          route_to_sandbox, ledger):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"}, profile="commercial", auto_submit=True)
    # generate → clean → queued by auto-submit → batched → submitted; then a collection (as the
    # schedule started when the payer was added runs one every interval) picks up the reports.
    await adrain(store)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    claim = await claim_for(api, "enc-brooks-1")
    assert history(claim)[:2] == ["queued", "submitted"]
    acme_visits = ("enc-brooks-1", "enc-maxwell-1")  # the demo's two Acme patients
    assert ledger()["claim_count"] == len(acme_visits)  # each clean claim reached the payer once
    # Claims of payers without auto-submit stay clean.
    assert lifecycle(await claim_for(api, "enc-alvarez-1")) == "clean"
    kinds = sorted(m["kind"] for m in messages(store, tenant))
    assert kinds == sorted(["277CA", "835"] * len(acme_visits))  # a 277CA and an 835 report per claim
    assert {m["status"] for m in messages(store, tenant)} == {"posted"}
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) in ("paid", "partially-paid", "denied")
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()["total"] == 1
    # Collected again: the reports were acknowledged, nothing new arrives.
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert len(messages(store, tenant)) == 2 * len(acme_visits)


async def test_fhir_payer_synchronous_claim_response(api, store, tenant, payer_settings, demo_bundle,
                                                     route_to_sandbox, ledger):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="medicare", auto_submit=True)
    await adrain(store)
    patient_share = Decimal(0)
    for enc in ("enc-alvarez-1", "enc-alvarez-2"):
        claim = await claim_for(api, enc)
        assert lifecycle(claim) in ("paid", "partially-paid", "denied"), history(claim)
        assert "submitted" in history(claim)
        responses = (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}")).json()
        assert responses["total"] == 1 and responses["entry"][0]["resource"]["outcome"] == "complete"
        response = responses["entry"][0]["resource"]
        # The adjudication is kept as the claim's ExplanationOfBenefit, as an 835's would be: the
        # claim's paid total, A/R and the patient's balance read it.
        eobs = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()
        assert eobs["total"] == 1
        eob = eobs["entry"][0]["resource"]
        assert eob["claimResponse"]["reference"] == f"ClaimResponse/{response['id']}"
        paid = Decimal(str(response["payment"]["amount"]["value"]))
        assert Decimal(str(eob["payment"]["amount"]["value"])) == paid
        with store.for_tenant(tenant).unit() as unit:
            assert reversals.paid_total(unit, claim["id"]) == paid
        lines = {i["sequence"]: i for i in claim["item"]}
        assert [i["productOrService"] for i in eob["item"]] == \
            [lines[i["itemSequence"]]["productOrService"] for i in response["item"]]
        patient_share += sum((Decimal(str(a["amount"]["value"])) for i in response["item"] for a in i["adjudication"]
                              if any(c.get("system") == GROUP_SYSTEM and c.get("code") == "PR"
                                     for c in (a.get("category") or {}).get("coding", []))), Decimal(0))
    assert patient_share > 0  # Medicare leaves the deductible and coinsurance to the patient
    r = await api.post("/fhir/Patient/pat-alvarez/$balance")
    assert r.status_code == 200, r.text
    assert Decimal(str(next(p["valueMoney"]["value"] for p in r.json()["parameter"] if p["name"] == "balance"))) \
        == patient_share
    # The same adjudication answered again under a new resource id (a payer's $inquire): still
    # one EOB per claim, the payment counted once.
    with store.for_tenant(tenant).unit() as unit:
        claim = unit.read("Claim", claim["id"]).resource()
        posting.post_claim_response(unit, claim, {**response, "id": "inquiry-answer"}, source="inquire:1")
        assert reversals.paid_total(unit, claim["id"]) == paid
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()["total"] == 1
    assert ledger()["claim_count"] == len(MEDICARE_VISITS)  # Okafor's went out too
    assert all(j.status == "done" for j in jobs(store, tenant, "submit-claims"))


async def test_a_claim_written_clean_is_auto_submitted(api, store, tenant, payer_settings, demo_bundle,
                                                       route_to_sandbox, ledger):
    """A claim a client writes clean (a biller's corrected claim) is queued for submission by the
    store's auto-submit observer when its payer auto-submits, and then sent like any other."""
    await load_practice(api, demo_bundle)
    await adrain(store)  # claims generated; Acme has no connection yet, so its claims stay clean
    generated = await claim_for(api, "enc-brooks-1")
    assert lifecycle(generated) == "clean"
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"}, profile="commercial", auto_submit=True)

    corrected = {k: v for k, v in generated.items() if k not in ("id", "meta")}
    r = await api.post("/fhir/Claim", json=corrected)
    assert r.status_code == 201, r.text
    assert [j.status for j in jobs(store, tenant, "auto-submit-claim")] == ["queued"]
    await adrain(store)

    posted = (await api.get(f"/fhir/Claim/{r.json()['id']}")).json()
    steps = history(posted)
    # queued, then sent; the payer's answers, collected in the same run, may have moved it on
    assert steps[steps.index("queued") + 1] == "submitted"
    assert lifecycle((await api.get(f"/fhir/Claim/{generated['id']}")).json()) == "clean"  # not rewritten
    assert ledger()["claim_count"] == 1
