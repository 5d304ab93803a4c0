"""Eligibility $submit: real time over clearinghouse-json, queued (270 → 271) over x12-directory."""
from __future__ import annotations

from payer_adapters.sandbox import Engine, Mailbox, load_config

from tests.flows import NOW, SANDBOX, adrain, connect, load_practice


async def _request(api, coverage: str) -> dict:
    r = await api.post(f"/fhir/Coverage/{coverage}/$eligibility-request",
                       params={"servicedDate": "2026-11-23", "discipline": "OT"})
    assert r.status_code == 201, r.text
    return r.json()


async def test_realtime_answer_is_stored_and_returned(api, store, tenant, payer_settings, demo_bundle,
                                                      route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"})
    req = await _request(api, "cov-brooks")
    r = await api.post(f"/fhir/CoverageEligibilityRequest/{req['id']}/$submit")
    assert r.status_code == 200, r.text
    resp = r.json()
    assert resp["resourceType"] == "CoverageEligibilityResponse"
    assert resp["request"]["reference"] == f"CoverageEligibilityRequest/{req['id']}"
    assert resp["insurance"][0]["inforce"] is True
    found = (await api.get(f"/fhir/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{req['id']}")).json()
    assert found["total"] == 1

    # A request in the body is stored first, then answered.
    body = {k: v for k, v in req.items() if k not in ("id", "meta", "identifier")}
    r = await api.post("/fhir/CoverageEligibilityRequest/$submit", json=body)
    assert r.status_code == 200 and r.json()["request"]["reference"] != f"CoverageEligibilityRequest/{req['id']}"


async def test_batch_eligibility_is_queued_and_the_271_posted(api, store, tenant, payer_settings, demo_bundle,
                                                              mailbox, route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    req = await _request(api, "cov-alvarez")
    r = await api.post(f"/fhir/CoverageEligibilityRequest/{req['id']}/$submit")
    assert r.status_code == 202, r.text
    where = r.headers["content-location"]
    assert where.endswith(f"/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{req['id']}")
    await adrain(store)
    assert any(p.name.startswith("270_") for p in (mailbox / "inbox").iterdir())
    Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    from app.payers.inbound import queue_collection

    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    found = (await api.get("/fhir" + where.split("/fhir", 1)[1])).json()
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["insurance"][0]["inforce"] is True
