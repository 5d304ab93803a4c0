"""Electronic prior authorization through the sandbox FHIR payer: a Claim with use =
preauthorization sent with ``$submit`` comes back as the payer's decision, stored as the
authorization the next claims quote and consume; payers without a FHIR API are refused."""
from __future__ import annotations

from typing import Any

from tests.app.claims.test_authorizations import BILLER, DISCIPLINE, counted, parts
from tests.flows import SANDBOX, adrain, claim_for, connect, load_practice

CPT = "http://www.ama-assn.org/go/cpt"
FHIR_PAYER = {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
              "client_id": "demo-client"}


def request(patient: str = "pat-alvarez", coverage: str = "cov-alvarez", insurer: str = "payer-medicare",
            items: list[tuple[str, str, int]] | None = None, status: str = "active") -> dict[str, Any]:
    """A prior-authorization request: (system, code, visits or units asked for) per item."""
    return {
        "resourceType": "Claim", "status": status, "use": "preauthorization",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": {"reference": f"Patient/{patient}"}, "created": "2026-10-30T12:00:00Z",
        "insurer": {"reference": f"Organization/{insurer}"}, "provider": {"reference": "Organization/demo-practice"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "billablePeriod": {"start": "2026-11-01"},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage}"}}],
        "item": [{"sequence": n, "productOrService": {"coding": [{"system": system, "code": code}]},
                  "quantity": {"value": count}, "servicedDate": "2026-11-01"}
                 for n, (system, code, count) in enumerate(items or [(DISCIPLINE, "OT", 10)], start=1)],
    }


async def _practice(api: Any, store: Any, tenant: str, settings: Any, demo_bundle: dict[str, Any]) -> None:
    await load_practice(api, demo_bundle)
    connect(store, settings, tenant, "payer-medicare", "fhir-payer", FHIR_PAYER, {"client_secret": "demo-secret"},
            profile="medicare")
    await adrain(store)


async def test_an_approved_request_is_the_authorization_the_next_claim_consumes(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox):
    await _practice(api, store, tenant, payer_settings, demo_bundle)
    r = await api.post("/fhir/Claim", json=request())
    assert r.status_code == 201, r.text
    req = r.json()
    assert "extension" not in req or not any("lifecycle" in e.get("url", "") for e in req["extension"])

    r = await api.post(f"/fhir/Claim/{req['id']}/$submit")
    assert r.status_code == 200, r.text
    auth = r.json()
    assert auth["resourceType"] == "ClaimResponse" and auth["use"] == "preauthorization"
    assert auth["outcome"] == "complete" and auth["preAuthRef"].startswith("PA")
    assert auth["preAuthPeriod"] == {"start": "2026-11-01", "end": "2027-01-29"}  # Medicare: 90 days
    assert auth["patient"] == {"reference": "Patient/pat-alvarez"}
    assert auth["request"] == {"reference": f"Claim/{req['id']}"}
    assert auth["addItem"][0]["productOrService"]["coding"][0]["code"] == "OT"
    assert auth["addItem"][0]["quantity"] == {"value": 10}
    assert r.headers["location"].endswith(f"/ClaimResponse/{auth['id']}")
    assert (await api.get(f"/fhir/ClaimResponse/{auth['id']}")).json()["preAuthRef"] == auth["preAuthRef"]
    audited = (await api.get(f"/fhir/AuditEvent?entity=ClaimResponse/{auth['id']}&action=C&_summary=count",
                             headers={"x-test-scope": "user/AuditEvent.rs"})).json()
    assert audited["total"] == 1  # recorded with the write, as the caller

    # Sent again unchanged: the payer replays its decision; the same authorization, not a second.
    again = await api.post(f"/fhir/Claim/{req['id']}/$submit")
    assert again.status_code == 200 and again.json()["preAuthRef"] == auth["preAuthRef"]
    found = (await api.get("/fhir/ClaimResponse", params={"patient": "Patient/pat-alvarez",
                                                         "use": "preauthorization"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [auth["id"]]

    # The next claim of the patient quotes it, and $usage counts that claim.
    r = await api.post("/fhir/Encounter/enc-alvarez-1/$generate-claim")
    assert r.status_code in (200, 201), r.text
    claim = await claim_for(api, "enc-alvarez-1")
    assert claim["status"] == "active" and claim["insurance"][0]["preAuthRef"] == [auth["preAuthRef"]]
    usage = (await api.get(f"/fhir/ClaimResponse/{auth['id']}/$usage", headers={"x-test-scope": BILLER})).json()
    assert parts(usage) == {"authorized": 10, "used": 1, "remaining": 9}
    assert counted(usage) == [f"Claim/{claim['id']}"]


async def test_denied_and_reduced_items(api, store, tenant, payer_settings, demo_bundle, route_to_sandbox):
    await _practice(api, store, tenant, payer_settings, demo_bundle)
    # 97039 is never authorized; 20 visits asked, Medicare approves 12 at most: partial.
    req = (await api.post("/fhir/Claim", json=request(items=[(DISCIPLINE, "OT", 20), (CPT, "97039", 4)]))).json()
    auth = (await api.post(f"/fhir/Claim/{req['id']}/$submit")).json()
    assert auth["outcome"] == "partial" and auth["preAuthRef"]
    assert [(a["productOrService"]["coding"][0]["code"], a["quantity"]["value"]) for a in auth["addItem"]] == [("OT", 12)]
    assert auth["error"][0]["itemSequence"] == 2

    only_denied = (await api.post("/fhir/Claim", json=request(items=[(CPT, "97039", 4)]))).json()
    denied = (await api.post(f"/fhir/Claim/{only_denied['id']}/$submit")).json()
    assert denied["outcome"] == "complete" and "preAuthRef" not in denied and "addItem" not in denied
    assert denied["disposition"].startswith("Denied")


async def test_payers_without_a_fhir_api_and_requests_that_cannot_be_sent(
        api, store, tenant, payer_settings, demo_bundle, mailbox, route_to_sandbox, ledger):
    await _practice(api, store, tenant, payer_settings, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "x12-directory", {"root": str(mailbox)}, profile="commercial")
    acme = (await api.post("/fhir/Claim", json=request(patient="pat-brooks", coverage="cov-brooks",
                                                       insurer="payer-acme"))).json()
    r = await api.post(f"/fhir/Claim/{acme['id']}/$submit")
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Claim.insurer"] and "needs a FHIR payer" in issue["diagnostics"]
    assert "X12 278 is not offered" in issue["diagnostics"]

    # A caller who may not write ClaimResponses cannot ask (the answer would be stored).
    medicare = (await api.post("/fhir/Claim", json=request())).json()
    r = await api.post(f"/fhir/Claim/{medicare['id']}/$submit", headers={"x-test-scope": "user/Claim.cruds"})
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"

    draft = (await api.post("/fhir/Claim", json=request(status="draft"))).json()
    r = await api.post(f"/fhir/Claim/{draft['id']}/$submit")
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Claim.status"]

    nothing = (await api.get("/fhir/ClaimResponse", params={"use": "preauthorization"})).json()
    assert nothing["total"] == 0  # nothing stored
    assert ledger()["claim_count"] == 0  # and nothing reached the payer as a claim
