"""Repeated denials become a payer rule, end to end against the sandbox payer: three claims Medicare
denies the same way (97530, CO-50) open one rule-proposal Task; accepting it writes the rule into
the practice's rule pack (a Library); the next Medicare claim with 97530 is held by the rule with
its text, while a claim to another payer, or of another practice, is not."""
from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from app.payers import denial_patterns
from app.payers.inbound import queue_collection
from payer_adapters.sandbox import Engine, Mailbox, load_config
from tests.conftest import PUBLIC_URL
from tests.flows import NOW, adrain, claim_for, connect, lifecycle, load_practice

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
SCRUB_RULE = "https://therabridge.dev/fhir/CodeSystem/scrub-rule"
PROFILE = "https://therabridge.dev/fhir/StructureDefinition/payer-rule-pack"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
BILLER = ("user/Task.crus user/Library.crus user/Claim.cruds user/Organization.rs")


def visit(bundle: dict[str, Any], source: str, new: str, day: str) -> list[dict[str, Any]]:
    """Entries for a copy of the visit ``source`` (Encounter and Procedures) under id ``new`` on ``day``."""
    out = []
    for entry in bundle["entry"]:
        r = entry["resource"]
        if (r["resourceType"] == "Encounter" and r["id"] == source) or \
                (r["resourceType"] == "Procedure" and r["encounter"]["reference"] == f"Encounter/{source}"):
            r = json.loads(json.dumps(r).replace(source, new).replace("2026-11-05", day))
            out.append({"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}})
    return out


def with_visits(bundle: dict[str, Any], *visits: tuple[str, str, str]) -> dict[str, Any]:
    bundle = copy.deepcopy(bundle)
    for source, new, day in visits:
        bundle["entry"] += visit(bundle, source, new, day)
    return bundle


async def tasks(api: httpx.AsyncClient, code: str, **params: str) -> list[dict[str, Any]]:
    query = "".join(f"&{k}={v}" for k, v in params.items())
    bundle = (await api.get(f"/fhir/Task?code={TASK_CODES}|{code}{query}")).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def inputs(task: dict[str, Any], name: str) -> list[Any]:
    return [next(v for k, v in i.items() if k.startswith("value")) for i in task["input"] if i["type"]["text"] == name]


def tenant_issues(outcome_or_claim_task: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in outcome_or_claim_task if (i.get("details") or {}).get("coding", [{}])[0].get("code") == "TENANT-RULE"]


async def generate(api: httpx.AsyncClient, encounter: str) -> tuple[dict[str, Any], dict[str, Any]]:
    r = await api.post(f"/fhir/Encounter/{encounter}/$generate-claim")
    assert r.status_code == 200, r.text
    claim, outcome = (e["resource"] for e in r.json()["entry"])
    return claim, outcome


async def deny_three(api: httpx.AsyncClient, store: Any, tenant: str, settings: Any, mailbox: Path,
                     bundle: dict[str, Any]) -> tuple[list[str], Mailbox]:
    """Medicare on an X12 mailbox denies 97530 as not medically necessary on three visits' claims."""
    await load_practice(api, with_visits(bundle, ("enc-alvarez-2", "enc-alvarez-3", "2026-11-10")))
    connect(store, settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)}, profile="medicare")
    await adrain(store)
    claims = [await claim_for(api, e) for e in ("enc-alvarez-1", "enc-alvarez-2", "enc-alvarez-3")]
    for c in claims:
        assert lifecycle(c) == "clean", c["id"]
        assert (await api.post(f"/fhir/Claim/{c['id']}/$submit")).status_code == 202
    await adrain(store)
    cfg = load_config()
    cfg.data["payers"]["MCRDEMO"]["not_medically_necessary"] = ["97530"]
    payer = Mailbox(mailbox, Engine(cfg))
    payer.process(NOW)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    return [c["id"] for c in claims], payer


async def test_three_denials_propose_a_rule_that_holds_the_next_claim(
        api, app, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim_ids, payer = await deny_three(api, store, tenant, payer_settings, mailbox, demo_bundle)
    assert len(await tasks(api, "denial")) == 3

    [proposal] = await tasks(api, "rule-proposal")
    assert proposal["status"] == "requested" and proposal["focus"]["reference"] == "Organization/payer-medicare"
    assert inputs(proposal, "payer")[0]["reference"] == "Organization/payer-medicare"
    assert inputs(proposal, "code")[0]["coding"][0]["code"] == "97530"
    reason = inputs(proposal, "reason")[0]
    assert [c["code"] for c in reason["coding"]] == ["CO", "50"] and reason["coding"][1]["system"] == CARC
    assert sorted(r["reference"] for r in inputs(proposal, "claim")) == sorted(f"Claim/{c}" for c in claim_ids)
    rule = json.loads(inputs(proposal, "proposed-rule")[0])
    assert rule["match"] == {"codes": ["97530"]} and rule["severity"] == "error"
    assert "Medicare" in rule["text"] and "97530" in rule["text"] and "CO-50" in rule["text"]
    # found by the payer it is about
    assert [t["id"] for t in await tasks(api, "rule-proposal", focus="Organization/payer-medicare")] == [proposal["id"]]

    # The same 835 delivered again: the same claims, no second proposal, no claim listed twice.
    [remit] = [p.name for p in (mailbox / "archive").iterdir() if p.name.startswith("835")]
    payer.redeliver(remit)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    [again] = await tasks(api, "rule-proposal")
    assert again["id"] == proposal["id"] and len(inputs(again, "claim")) == 3

    # A rule that does not fit the schema is refused, naming the field; the proposal stays open.
    bad = dict(rule, severity="hold")
    r = await api.post(f"/fhir/Task/{proposal['id']}/$accept-rule", headers={"x-test-scope": BILLER},
                       json={"resourceType": "Parameters", "parameter": [{"name": "rule", "valueString": json.dumps(bad)}]})
    assert r.status_code == 422, r.text
    [problem] = r.json()["issue"]
    assert problem["expression"][-1].endswith(".valueString.severity") and "error, warning" in problem["diagnostics"]
    assert (await api.get("/fhir/Library")).json().get("total", 0) == 0
    assert (await api.get(f"/fhir/Task/{proposal['id']}")).json()["status"] == "requested"

    # Accepting writes a Library: a token that may not create one is refused, nothing changes.
    r = await api.post(f"/fhir/Task/{proposal['id']}/$accept-rule", headers={"x-test-scope": "user/Task.rus"})
    assert r.status_code == 403, r.text
    assert (await api.get(f"/fhir/Task/{proposal['id']}")).json()["status"] == "requested"

    # Accepted as proposed: version 1 of Medicare's rule pack, effective from the first denied visit.
    r = await api.post(f"/fhir/Task/{proposal['id']}/$accept-rule", headers={"x-test-scope": BILLER})
    assert r.status_code == 201, r.text
    library = r.json()
    assert library["version"] == "1" and library["status"] == "active" and PROFILE in library["meta"]["profile"]
    assert library["effectivePeriod"]["start"] == "2026-11-03"
    assert library["useContext"][0]["valueReference"]["reference"] == "Organization/payer-medicare"
    assert json.loads(base64.b64decode(library["content"][0]["data"]))["rules"] == [rule]
    done = (await api.get(f"/fhir/Task/{proposal['id']}")).json()
    assert done["status"] == "completed" and done["output"][0]["valueReference"]["reference"] == f"Library/{library['id']}"
    assert (await api.post(f"/fhir/Task/{proposal['id']}/$accept-rule")).status_code == 409
    found = (await api.get("/fhir/Library?payer=Organization/payer-medicare&status=active")).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [library["id"]]

    # The next Medicare visit with 97530 is held by the practice's rule, with its text.
    extra = with_visits(demo_bundle, ("enc-alvarez-2", "enc-alvarez-4", "2026-11-12"))
    r = await api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                      "entry": visit(extra, "enc-alvarez-2", "enc-alvarez-4", "2026-11-12")})
    assert r.status_code == 200, r.text
    await adrain(store)
    held = await claim_for(api, "enc-alvarez-4")
    assert held["status"] == "draft" and lifecycle(held) == "draft"
    _, outcome = await generate(api, "enc-alvarez-4")
    [hit] = tenant_issues(outcome["issue"])
    assert hit["severity"] == "error" and rule["text"] in hit["details"]["text"]
    assert hit["details"]["coding"][1]["code"] == rule["id"] and f"Library/{library['id']}" in hit["diagnostics"]
    assert hit["expression"][0].startswith("Claim.item[")
    [review] = await tasks(api, "claim-review", focus=f"Claim/{held['id']}")
    assert [i["type"]["text"] for i in review["input"]] == ["TENANT-RULE"]
    # $scrub of the stored claim says the same
    scrubbed = (await api.post(f"/fhir/Claim/{held['id']}/$scrub")).json()
    assert [i["details"]["coding"][1]["code"] for i in tenant_issues(scrubbed["issue"])] == [rule["id"]]

    # Maxwell's visit bills 97530 to Acme: another payer, not touched.
    maxwell, outcome = await generate(api, "enc-maxwell-1")
    assert tenant_issues(outcome["issue"]) == []

    # Another practice with the same data and payer: its claims are not touched either.
    other = "t-" + uuid.uuid4().hex[:12]
    store.ensure_tenant(other)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL,
                                 headers={"x-test-tenant": other}) as api2:
        await load_practice(api2, demo_bundle)
        await adrain(store)
        theirs, outcome = await generate(api2, "enc-alvarez-2")
        assert tenant_issues(outcome["issue"]) == [] and theirs["status"] == "active"
        assert (await api2.get("/fhir/Library")).json().get("total", 0) == 0
        assert await tasks(api2, "rule-proposal") == []


async def test_a_dismissed_proposal_is_not_proposed_again_for_the_same_claims(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    _, payer = await deny_three(api, store, tenant, payer_settings, mailbox, demo_bundle)
    [proposal] = await tasks(api, "rule-proposal")
    proposal["status"] = "cancelled"
    assert (await api.put(f"/fhir/Task/{proposal['id']}", json=proposal)).status_code == 200
    [remit] = [p.name for p in (mailbox / "archive").iterdir() if p.name.startswith("835")]
    payer.redeliver(remit)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    assert [t["status"] for t in await tasks(api, "rule-proposal")] == ["cancelled"]


async def test_a_practice_sets_its_own_threshold(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    denial_patterns.set_policy(store.engine, tenant, 4, 30)
    await deny_three(api, store, tenant, payer_settings, mailbox, demo_bundle)
    assert len(await tasks(api, "denial")) == 3
    assert await tasks(api, "rule-proposal") == []


def _library(rules: Any, payer: str = "Organization/payer-medicare", version: str = "1") -> dict[str, Any]:
    return {"resourceType": "Library", "status": "active", "version": version,
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type",
                                 "code": "logic-library"}]},
            "effectivePeriod": {"start": "2026-01-01"},
            "useContext": [{"code": {"system": "https://therabridge.dev/fhir/CodeSystem/usage-context", "code": "payer"},
                            "valueReference": {"reference": payer}}],
            "content": [{"contentType": "application/json",
                         "data": base64.b64encode(json.dumps(rules).encode()).decode()}]}


GOOD = {"id": "r1", "text": "Medicare wants 59 on 97530 with 97110", "severity": "warning",
        "match": {"codes": ["97530"], "withCodes": ["97110"], "withoutModifiers": ["59"]}}


async def test_a_rule_pack_written_through_the_api_is_checked_whole(api, demo_bundle):
    await load_practice(api, demo_bundle)
    bad = dict(GOOD, id="r2", match={"codes": ["97530"], "withoutModifiers": "59"})
    r = await api.post("/fhir/Library", json=_library({"rules": [GOOD, bad]}))
    assert r.status_code == 422, r.text
    [problem] = r.json()["issue"]
    assert problem["expression"] == ["Library.content[0].data", "Library.content[0].data.rules[1].match.withoutModifiers"]
    assert (await api.get("/fhir/Library")).json().get("total", 0) == 0
    r = await api.post("/fhir/Library", json=_library({"rules": [GOOD]}, payer="Organization/nowhere"))
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Library.useContext"]
    r = await api.post("/fhir/Library", json=_library("not a pack"))
    assert r.status_code == 422 and r.json()["issue"][0]["expression"][-1] == "Library.content[0].data.rules"

    r = await api.post("/fhir/Library", json=_library({"rules": [GOOD]}))
    assert r.status_code == 201, r.text
    assert PROFILE in r.json()["meta"]["profile"]
    r = await api.post("/fhir/Library", json=_library({"rules": [GOOD]}))
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Library.version"]
    # the warning shows on Medicare's 97530 + 97110 visit, which still goes
    claim, outcome = await generate(api, "enc-alvarez-2")
    [hit] = tenant_issues(outcome["issue"])
    assert hit["severity"] == "warning" and claim["status"] == "active"
    assert hit["expression"][0].endswith(".modifier")


async def test_a_payer_apis_line_denials_count_per_line_code(api, store, tenant, demo_bundle):
    """A payer API's ClaimResponse denies a line by its itemSequence: only that line's code counts.
    A later denial joins the open proposal; once it is dismissed, one more denial proposes nothing."""
    from app.payers import denials
    from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM

    visits = [("enc-alvarez-2", f"enc-alvarez-{n}", f"2026-11-{8 + n}") for n in (3, 4, 5)]
    await load_practice(api, with_visits(demo_bundle, *visits))
    await adrain(store)

    async def deny(encounter: str) -> str:
        claim = await claim_for(api, encounter)
        [line] = [i for i in claim["item"] if i["productOrService"]["coding"][0]["code"] == "97530"]
        response = {"resourceType": "ClaimResponse", "id": f"cr-{encounter}", "outcome": "complete",
                    "created": "2026-11-20", "item": [{"itemSequence": line["sequence"], "adjudication": [
                        {"category": {"coding": [{"system": GROUP_SYSTEM, "code": "CO"}]},
                         "reason": {"coding": [{"system": CARC_SYSTEM, "code": "197"}]},
                         "amount": {"value": 80.0}}]}]}
        with store.for_tenant(tenant).unit() as unit:
            denials.from_claim_response(unit, claim, response)
        return claim["id"]

    for e in ("enc-alvarez-1", "enc-alvarez-2"):
        await deny(e)
    assert await tasks(api, "rule-proposal") == []
    await deny("enc-alvarez-3")
    [proposal] = await tasks(api, "rule-proposal")
    assert inputs(proposal, "code")[0]["coding"][0]["code"] == "97530"  # not 97110, paid on the same claims
    assert inputs(proposal, "reason")[0]["text"].startswith("CO-197")
    assert len(inputs(proposal, "claim")) == 3 and proposal["performerType"][0]["text"] == "biller"

    fourth = await deny("enc-alvarez-4")
    [joined] = await tasks(api, "rule-proposal")
    assert joined["id"] == proposal["id"] and inputs(joined, "claim")[-1]["reference"] == f"Claim/{fourth}"

    joined["status"] = "cancelled"
    assert (await api.put(f"/fhir/Task/{joined['id']}", json=joined)).status_code == 200
    await deny("enc-alvarez-5")
    assert [t["status"] for t in await tasks(api, "rule-proposal")] == ["cancelled"]

    # Drug (NDC) lines of real-world 835s are no procedure codes a rule can name: not counted.
    from app.payers import rule_proposals

    for e in ("enc-alvarez-1", "enc-alvarez-2", "enc-alvarez-3"):
        claim = await claim_for(api, e)
        with store.for_tenant(tenant).unit() as unit:
            rule_proposals.observe(unit, claim, [("00002143481", "CO", "16")])
    assert len(await tasks(api, "rule-proposal")) == 1
