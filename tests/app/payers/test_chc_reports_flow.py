"""Clearinghouse JSON reports posted like their X12 counterparts: a JSON 277CA rejection becomes a
rejected Claim with a ClaimResponse and a biller Task, a JSON 835 becomes EOBs and a
PaymentReconciliation with CARC/RARC, the same payment delivered again is posted once, and a
report that cannot be read is quarantined with a Task while the rest is posted."""
from __future__ import annotations

import json

import copy

import httpx

from app.payers.inbound import messages, queue_collection

from tests.flows import SANDBOX, adrain, claim_for, connect, history, jobs, lifecycle, load_practice

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
UNKNOWN_MEMBER = "ACM000UNKNOWN"


def _pcn(claim):
    return next(i["value"] for i in claim["identifier"] if i["system"].endswith("/patient-control-number"))


async def _acme(api, store, tenant, payer_settings, demo_bundle, *, maxwell_member=None):
    """The demo practice with Acme on the clearinghouse JSON API (auto-submit), answers collected."""
    bundle = copy.deepcopy(demo_bundle)
    if maxwell_member:
        coverage = next(e["resource"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Coverage" and e["resource"].get("subscriberId") == "ACMMAXED0001")
        coverage["subscriberId"] = maxwell_member
    await load_practice(api, bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"}, profile="commercial", auto_submit=True)
    await adrain(store)
    _collect(store, tenant)
    await adrain(store)


def _collect(store, tenant):
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)


async def test_json_277ca_rejection_and_json_835_post_like_x12(api, store, tenant, payer_settings, demo_bundle,
                                                              route_to_sandbox, ledger):
    await _acme(api, store, tenant, payer_settings, demo_bundle, maxwell_member=UNKNOWN_MEMBER)
    assert ledger()["claim_count"] == 2
    inbound = messages(store, tenant)
    assert sorted(m["kind"] for m in inbound) == ["277CA", "277CA", "835"]  # no 835 for a rejected claim
    assert {(m["content_type"], m["status"]) for m in inbound} == {("json", "posted")}

    # 277CA rejection (A7:164, member not found) → rejected, reasons on a ClaimResponse, a Task
    maxwell = await claim_for(api, "enc-maxwell-1")
    assert lifecycle(maxwell) == "rejected" and "submitted" in history(maxwell)
    [response] = [e["resource"] for e in (await api.get(f"/fhir/ClaimResponse?request=Claim/{maxwell['id']}")).json()["entry"]]
    assert response["outcome"] == "error" and response["request"]["reference"] == f"Claim/{maxwell['id']}"
    assert [c["code"] for c in response["error"][0]["code"]["coding"]] == ["A7", "164", "IL"]
    assert "contract or member number" in response["disposition"]
    assert (await api.get(f"/fhir/Task?code={TASK_CODES}|claim-rejected")).json()["total"] == 0
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{maxwell['id']}")).json()
    assert tasks["total"] == 1  # one work item per rejection: the denial Task, with the 277CA's reason
    task = tasks["entry"][0]["resource"]
    assert task["code"]["coding"][0]["code"] == "denial" and task["status"] == "requested"
    assert "277CA" in json.dumps(task) and "164" in json.dumps(task)
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{maxwell['id']}")).json()["total"] == 0

    # 277CA acceptance, then the 835 → paid with CO-45 and PR-3 (copay) on the EOB
    brooks = await claim_for(api, "enc-brooks-1")
    assert lifecycle(brooks) in ("paid", "partially-paid")
    assert {"queued", "submitted", "accepted"} <= set(history(brooks))
    acks = (await api.get(f"/fhir/ClaimResponse?request=Claim/{brooks['id']}")).json()
    assert acks["total"] == 1 and acks["entry"][0]["resource"]["outcome"] == "queued"
    eobs = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{brooks['id']}")).json()
    assert eobs["total"] == 1
    eob = eobs["entry"][0]["resource"]
    assert eob["claim"]["identifier"]["value"] == _pcn(brooks)
    reasons = {(a["category"]["coding"][0]["code"], a["reason"]["coding"][0]["code"])
               for i in eob["item"] for a in i["adjudication"] if "reason" in a}
    assert {("CO", "45"), ("PR", "3")} <= reasons
    [recon] = [e["resource"] for e in (await api.get("/fhir/PaymentReconciliation")).json()["entry"]]
    assert recon["paymentAmount"]["value"] == eob["payment"]["amount"]["value"] > 0
    assert recon["detail"][0]["identifier"]["value"] == _pcn(brooks)
    assert all(j.status == "done" for j in jobs(store, tenant, "post-response"))


async def test_same_json_835_delivered_again_is_posted_once(api, store, tenant, payer_settings, demo_bundle,
                                                           sandbox, route_to_sandbox):
    await _acme(api, store, tenant, payer_settings, demo_bundle)
    first = messages(store, tenant)
    eobs = (await api.get("/fhir/ExplanationOfBenefit")).json()["total"]
    claim_responses = (await api.get("/fhir/ClaimResponse")).json()["total"]
    assert eobs == 2 and {m["status"] for m in first} == {"posted"}
    # The clearinghouse lists each report again as a new transaction: other bytes, same content.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url=SANDBOX) as http:
        for m in first:
            r = await http.post("/sandbox/reports/redeliver", params={"name": m["name"]})
            assert r.status_code == 200
    _collect(store, tenant)
    await adrain(store)
    again = [m for m in messages(store, tenant) if ".again" in m["name"]]
    assert len(again) == len(first)  # stored: their bytes differ (another transaction id)
    assert sorted(m["status"] for m in again if m["kind"] == "835") == ["duplicate", "duplicate"]
    assert {m["status"] for m in again if m["kind"] == "277CA"} == {"posted"}  # same ids: overwritten, not added
    assert (await api.get("/fhir/ExplanationOfBenefit")).json()["total"] == eobs
    assert (await api.get("/fhir/PaymentReconciliation")).json()["total"] == 2
    assert (await api.get("/fhir/ClaimResponse")).json()["total"] == claim_responses


async def test_unreadable_json_report_is_quarantined_and_the_rest_posted(api, store, tenant, payer_settings,
                                                                        demo_bundle, sandbox, route_to_sandbox):
    chc = sandbox.state.sandbox.chc
    chc.add_report("BROKEN-835", "835", body=b'{"transactions": [{"financialInformation": '
                                              b'{"totalActualProviderPaymentAmount": "ten dollars"}}]}')
    chc.add_report("NOTJSON-277", "277", body=b"<html>gateway error</html>")
    await _acme(api, store, tenant, payer_settings, demo_bundle)
    inbound = messages(store, tenant)
    bad = {m["name"]: m for m in inbound if m["name"] in ("BROKEN-835", "NOTJSON-277")}
    assert {m["status"] for m in bad.values()} == {"quarantined"}
    assert "totalActualProviderPaymentAmount" in bad["BROKEN-835"]["error"]
    assert "ten dollars" not in bad["BROKEN-835"]["error"]
    assert "not JSON" in bad["NOTJSON-277"]["error"]
    assert {m["status"] for m in inbound if m["name"] not in bad} == {"posted"}
    tasks = (await api.get(f"/fhir/Task?code={TASK_CODES}|inbound-quarantined")).json()
    assert tasks["total"] == 2
    assert {n for n in bad if any(n in e["resource"]["description"] for e in tasks["entry"])} == set(bad)
    assert lifecycle(await claim_for(api, "enc-brooks-1")) in ("paid", "partially-paid")
    assert all(j.status == "done" for j in jobs(store, tenant, "post-response"))
    assert all(chc.reports[n]["acknowledged"] for n in bad)  # stored, so acknowledged at the payer
