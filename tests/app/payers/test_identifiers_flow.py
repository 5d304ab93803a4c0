"""The server reads identifiers the way the mapper, encoders and adapters do (PROFILE.md,
Identifiers): an external eligibility request or Claim is sent under its own identifier, a
CARIN-style payer is found in the payer directory, and a workers' comp employer travels with
its claim."""
from __future__ import annotations

import copy
from pathlib import Path

import fhir_mappings
from app import directory
from app.payers.inbound import queue_collection
from fhir_mappings.identifiers import patient_control_number
from app.payers.packages import claim_package
from app.payers.submission import queue_claim
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import decode, encode_837p, load_partner
from payer_adapters.x12.control import InMemoryControlNumbers

from tests.flows import NOW, adrain, claim_for, connect, lifecycle, load_practice

TRACE = "https://therabridge.dev/fhir/sid/eligibility-trace-number"
C4BB = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"


async def test_eligibility_request_is_asked_and_answered_under_its_own_identifier(
        api, store, tenant, payer_settings, demo_bundle, mailbox: Path, route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    body = {"resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["benefits"],
            "identifier": [{"system": "http://riverside.example/coverageeligibilityrequest", "value": "52345"}],
            "patient": {"reference": "Patient/pat-alvarez"}, "created": "2026-11-23", "servicedDate": "2026-11-23",
            "provider": {"reference": "Organization/demo-practice"}, "insurer": {"reference": "Organization/payer-medicare"},
            "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov-alvarez"}}]}
    r = await api.post("/fhir/CoverageEligibilityRequest/$submit", json=body)
    assert r.status_code == 202, r.text
    await adrain(store)
    assert [p.name for p in (mailbox / "inbox").iterdir() if p.name.startswith("270_")] == ["270_52345.x12"]
    stored = (await api.get("/fhir/CoverageEligibilityRequest?identifier=52345")).json()["entry"][0]["resource"]
    assert {"system": TRACE, "value": "52345"} in stored["identifier"]
    Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    found = (await api.get(f"/fhir/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{stored['id']}")).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["insurance"][0]["inforce"] is True


async def test_external_claim_is_sent_under_its_own_identifier(api, store, tenant, payer_settings, demo_bundle,
                                                               mailbox: Path, route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    await adrain(store)
    claim = copy.deepcopy(await claim_for(api, "enc-alvarez-1"))
    claim["identifier"] = [{"system": "http://riverside.example/claim", "value": "EXT-" + tenant[-8:].upper()}]
    claim["extension"] = [e for e in claim.get("extension", []) if "lifecycle" not in e["url"]]
    with store.for_tenant(tenant).unit() as unit:
        unit.create({k: v for k, v in claim.items() if k not in ("id", "meta")}, rid=f"ext-{tenant}")
        assert queue_claim(unit, f"ext-{tenant}")[1] == 202
    await adrain(store)
    files = [p for p in (mailbox / "inbox").iterdir() if p.name.startswith("837P_")]
    sent = [c.patient_control_number for f in files for t in decode(f.read_bytes()).transactions for c in t.claims]
    assert "EXT-" + tenant[-8:].upper() in sent

    # The payer's answers name the claim by that number, and are posted on it.
    Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    posted = (await api.get(f"/fhir/Claim/ext-{tenant}")).json()
    assert lifecycle(posted) in ("paid", "partially-paid", "denied")
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/ext-{tenant}")).json()["total"] == 1


async def test_a_claim_with_no_usable_control_number_gets_one_when_queued(api, store, tenant, payer_settings,
                                                                         demo_bundle, mailbox: Path):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    await adrain(store)
    claim = copy.deepcopy(await claim_for(api, "enc-alvarez-1"))
    claim["identifier"] = [{"system": "http://riverside.example/claim", "value": "lower-case-is-not-x12-basic"}]
    with store.for_tenant(tenant).unit() as unit:
        unit.create({k: v for k, v in claim.items() if k not in ("id", "meta")}, rid=f"bare-{tenant}")
        queued, status = queue_claim(unit, f"bare-{tenant}")
    assert status == 202
    assert patient_control_number(queued.resource()) == fhir_mappings.patient_control_number(f"bare-{tenant}")


async def test_carin_payer_is_found_in_the_directory_by_its_payer_id(api, store, tenant, payer_settings,
                                                                     demo_bundle, mailbox: Path):
    await load_practice(api, demo_bundle)
    org = (await api.get("/fhir/Organization/payer-acme")).json()
    org["identifier"] = [{"type": {"coding": [{"system": C4BB, "code": "payerid"}]}, "value": "ACME01"}]
    assert (await api.put("/fhir/Organization/payer-acme", json=org)).status_code == 200
    link = connect(store, payer_settings, tenant, "payer-acme", "x12-directory", {"root": str(mailbox)})
    assert link.payer_id == "ACME01"
    insurer = {"identifier": {"type": {"coding": [{"system": C4BB, "code": "payerid"}]}, "value": "ACME01"}}
    with store.engine.connect() as conn:
        found = directory.for_insurer(conn, tenant, insurer)
    assert found is not None and found.organization_id == "payer-acme"


async def test_workers_comp_employer_travels_with_the_claim_into_2010ba(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    claim = await claim_for(api, "enc-kim-1")
    with store.for_tenant(tenant).reading() as reader:
        pkg = claim_package(reader, claim)
    assert any(r["resourceType"] == "Organization" and r["id"] == "employer-kim" for r in pkg.resources)
    out = encode_837p(pkg.all_resources(), load_partner("sandbox"), InMemoryControlNumbers())
    submitted = decode(out).transactions[0].claims[0]
    assert (submitted.subscriber_entity, submitted.subscriber_name) == ("2", "PRAIRIE FREIGHT CO")
    assert (submitted.patient_relationship, submitted.patient_last) == ("20", "KIM")
