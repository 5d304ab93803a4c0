"""Appeals, end to end against the sandbox payer: ``Claim/{id}/$appeal`` writes the letter (a PDF
naming the claim, the patient and the denial codes, arguing by category) with the plan of care
and the EHR's notes enclosed; a person mails it to an X12 payer (or a job files it with a payer's
FHIR API as a Communication); the sandbox decides by rule, its answer posts the usual way, and the
denial Task records the outcome. Bad requests change nothing."""
from __future__ import annotations

import base64
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pypdf

from app.payers.inbound import queue_collection
from payer_adapters.x12.validate import validate

from tests.app.payers.test_denials_flow import (ALVAREZ, _fhir_payer_answers, code_of, denial_tasks, denied_claim,
                                                require_auth)
from tests.flows import NOW, adrain, claim_for, lifecycle, make_due, medicare_practice

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"


def not_necessary(data: dict[str, Any]) -> None:
    data["payers"]["MCRDEMO"]["not_medically_necessary"] = list(data["base_fee_schedule"])


def out(task: dict[str, Any], name: str) -> list[Any]:
    return [next(v for k, v in o.items() if k.startswith("value")) for o in task.get("output") or []
            if o["type"]["text"] == name]


def pdf_text(doc: dict[str, Any]) -> str:
    att = doc["content"][0]["attachment"]
    assert att["contentType"] == "application/pdf"
    body = base64.b64decode(att["data"])
    assert body.startswith(b"%PDF") and att["size"] == len(body)
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)


async def count(api, query: str) -> int:  # type: ignore[no-untyped-def]
    r = await api.get(f"/fhir/{query}{'&' if '?' in query else '?'}_summary=count")
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def add_note(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The EHR sends the visit's treatment note."""
    note = {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}], "text": "Progress note"},
            "subject": {"reference": "Patient/pat-alvarez"}, "date": "2026-11-03T10:00:00-06:00",
            "description": "OT treatment note",
            "content": [{"attachment": {"contentType": "text/plain",
                                        "data": base64.b64encode(b"Skilled OT: ADL retraining, 45 min.").decode()}}],
            "context": {"encounter": [{"reference": "Encounter/enc-alvarez-1"}]}}
    r = await api.post("/fhir/DocumentReference", json=note)
    assert r.status_code == 201, r.text
    return r.json()


async def mailed_package(api, letter: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What the biller prints and mails: the letter and every enclosure it lists."""
    entries = [{"resource": letter}]
    for rel in letter["context"]["related"]:
        if not rel["reference"].startswith("Claim/"):
            entries.append({"resource": (await api.get(f"/fhir/{rel['reference']}")).json()})
    return {"resourceType": "Bundle", "type": "collection", "identifier": {"value": letter["id"]}, "entry": entries}


async def collect(store, tenant: str) -> None:  # type: ignore[no-untyped-def]
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)


async def test_a_medical_necessity_denial_appealed_with_the_plan_of_care_is_overturned_and_paid(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim, payer, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, not_necessary)
    assert lifecycle(claim) == "denied"
    [denial] = await denial_tasks(api)
    assert code_of(denial, "category") == "medical-necessity"
    note = await add_note(api)

    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 201, r.text
    bundle = r.json()
    assert bundle["type"] == "collection"
    letter, task, send = (e["resource"] for e in bundle["entry"])
    assert r.headers["Location"].split("/fhir/")[1].startswith(f"DocumentReference/{letter['id']}/_history/")

    # The letter: a PDF about the claim, naming patient, payer, dates, codes and the argument
    assert letter["type"]["coding"][0]["code"] == "appeal-letter" and letter["subject"] == claim["patient"]
    related = [x["reference"] for x in letter["context"]["related"]]
    assert related[0] == f"Claim/{claim['id']}" and "CarePlan/poc-alvarez" in related
    assert f"DocumentReference/{note['id']}" in related
    text = pdf_text(letter)
    pcn = letter["context"]["related"][0]["identifier"]["value"]
    for expected in ("CO-50", "N115", "Alvarez", pcn, "Medicare Part B", "redetermination", "2026-11-03",
                     "plan of care from 2026-11-02 to 2027-01-30", "Anil Patel", ALVAREZ, "Riverside Therapy"):
        assert expected in text.replace("\n", " "), expected
    [eob] = [e["resource"] for e in (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}"))
             .json()["entry"]]
    for item in eob["item"]:  # each disputed line, with its code, modifier and date
        code = item["productOrService"]["coding"][0]["code"]
        assert f"{item['servicedDate']} {code}-GO" in text and "CO-50 $" in text

    # The denial Task tracks it; a person is asked to mail it by the deadline
    assert task["id"] == denial["id"] and task["businessStatus"]["text"] == "appealed"
    assert out(task, "appeal-letter") == [{"reference": f"DocumentReference/{letter['id']}"}]
    assert out(task, "appeal-status") == ["pending"]
    assert send["code"]["coding"][0]["code"] == "appeal-send" and send["status"] == "requested"
    assert send["restriction"]["period"]["end"] == denial["restriction"]["period"]["end"]
    assert {"reference": "CarePlan/poc-alvarez"} in [i.get("valueReference") for i in send["input"]]

    for written in (f"DocumentReference/{letter['id']}", f"Task/{send['id']}"):  # audited with the writes
        r = await api.get(f"/fhir/AuditEvent?entity={written}&action=C&_summary=count",
                          headers={"x-test-scope": "user/AuditEvent.rs"})
        assert r.json()["total"] == 1, written

    # A second appeal while this one waits: 409, nothing written
    docs = await count(api, "DocumentReference")
    again = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert again.status_code == 409 and again.json()["resourceType"] == "OperationOutcome"
    assert await count(api, "DocumentReference") == docs

    # The biller mails it and completes the Task: the appeal is recorded sent that day
    send.update(status="completed", executionPeriod={"end": "2026-11-25"})
    assert (await api.put(f"/fhir/Task/{send['id']}", json=send)).status_code == 200
    await adrain(store)
    assert out((await api.get(f"/fhir/Task/{denial['id']}")).json(), "appeal-sent") == ["2026-11-25"]

    # The payer receives the package, overturns (plan of care enclosed) and sends an 835
    written = payer.appeal(await mailed_package(api, letter), NOW)
    [remit] = written
    assert validate((mailbox / "outbox" / remit).read_bytes()) == []
    assert payer.appeal(await mailed_package(api, letter), NOW) == []  # the same package again: decided once
    [decided] = payer.engine.ledger.summary()["appeals"]
    assert decided["decision"] == "overturn" and "plan-of-care" in decided["enclosures"]
    await collect(store, tenant)

    paid = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(paid) == "paid"
    closed = (await api.get(f"/fhir/Task/{denial['id']}")).json()
    assert closed["status"] == "completed" and closed["businessStatus"]["text"] == "overturned"
    assert out(closed, "appeal-outcome") == ["overturned"] and out(closed, "appeal-status") == ["decided"]
    eobs = [e["resource"] for e in (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}"))
            .json()["entry"]]
    assert sum(e["payment"]["amount"]["value"] for e in eobs) > 0  # the denial reversed, the claim paid
    assert await denial_tasks(api, status="requested") == []

    # Paid now: nothing left to appeal
    done = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert done.status_code == 422


async def test_an_appeal_without_the_plan_of_care_is_upheld_and_may_go_to_the_next_level(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    claim, payer, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, not_necessary)
    assert (await api.delete("/fhir/CarePlan/poc-alvarez")).status_code in (200, 204)
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 201, r.text
    letter, task, _send = (e["resource"] for e in r.json()["entry"])
    assert not any(x["reference"].startswith("CarePlan/") for x in letter["context"]["related"])
    assert "none on file" in pdf_text(letter)

    assert payer.appeal(await mailed_package(api, letter), NOW)
    assert payer.engine.ledger.summary()["appeals"][0]["decision"] == "uphold"
    await collect(store, tenant)

    still = (await api.get(f"/fhir/Task/{task['id']}")).json()
    assert still["status"] == "requested" and still["businessStatus"]["text"] == "appeal-upheld"
    assert out(still, "appeal-outcome") == ["upheld"] and out(still, "appeal-level") == ["redetermination"]
    # Medicare's next level, reconsideration, is due 180 days from the decision that upheld the denial
    assert out(still, "appeal-next-level") == ["reconsideration"]
    assert still["restriction"]["period"]["end"] == (NOW.date() + timedelta(days=180)).isoformat()
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "denied"
    # upheld, not pending: the next level may be asked for, a second letter
    second = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert second.status_code == 201, second.text
    letter2, task2 = (e["resource"] for e in second.json()["entry"][:2])
    assert len(out(task2, "appeal-letter")) == 2 and out(task2, "appeal-status") == ["decided", "pending"]
    assert out(task2, "appeal-level") == ["redetermination", "reconsideration"]
    assert "Request for reconsideration" in pdf_text(letter2)


async def test_a_fhir_payer_gets_the_appeal_as_a_communication_and_its_decision_is_posted(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox, sandbox):
    claim = await _fhir_payer_answers(api, store, tenant, payer_settings, demo_bundle, sandbox, not_necessary)
    assert lifecycle(claim) == "denied"
    [denial] = [t for t in await denial_tasks(api) if t["focus"]["reference"] == f"Claim/{claim['id']}"]
    await add_note(api)

    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 201, r.text
    entries = [e["resource"] for e in r.json()["entry"]]
    assert [e["resourceType"] for e in entries] == ["DocumentReference", "Task"]  # no send Task: a job sends it
    assert "CO-50" in pdf_text(entries[0])
    await adrain(store)  # send-appeal: the Communication goes to the payer

    engine = sandbox.state.sandbox.engine
    [decided] = engine.ledger.summary()["appeals"]
    assert decided["decision"] == "overturn"
    assert set(decided["enclosures"]) == {"plan-of-care", "clinical-notes"}
    task = (await api.get(f"/fhir/Task/{denial['id']}")).json()
    assert out(task, "appeal-sent") and out(task, "appeal-status") == ["pending"]

    make_due(store, tenant)  # the follow-up asks the payer later
    await adrain(store)
    paid = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(paid) == "paid"
    closed = (await api.get(f"/fhir/Task/{denial['id']}")).json()
    assert closed["status"] == "completed" and out(closed, "appeal-outcome") == ["overturned"]
    responses = [e["resource"] for e in (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}"))
                 .json()["entry"]]
    assert any(x.get("disposition", "").startswith("Appeal overturned") for x in responses)


async def test_bad_appeals_are_refused_and_write_nothing(
        api, app, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    import httpx

    # never sent: a generated claim not submitted
    await medicare_practice(api, store, tenant, payer_settings, mailbox, demo_bundle)
    fresh = await claim_for(api, "enc-alvarez-1")
    before = (await count(api, "DocumentReference"), await count(api, "Task"))
    r = await api.post(f"/fhir/Claim/{fresh['id']}/$appeal")
    assert r.status_code == 422 and "not been adjudicated" in r.text
    assert r.json()["issue"][0]["expression"] == ["Claim"]
    assert (await api.post("/fhir/Claim/no-such-claim/$appeal")).status_code == 404
    assert (await count(api, "DocumentReference"), await count(api, "Task")) == before

    # another tenant's claim is not found
    from tests.conftest import PUBLIC_URL
    other = "t-other-" + tenant[-6:]
    store.ensure_tenant(other)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL,
                                 headers={"x-test-tenant": other}) as elsewhere:
        assert (await elsewhere.post(f"/fhir/Claim/{fresh['id']}/$appeal")).status_code == 404

    # declared: the OperationDefinition, and the CapabilityStatement's Claim operations
    assert (await api.get("/fhir/OperationDefinition/Claim-appeal")).json()["code"] == "appeal"
    meta = (await api.get("/fhir/metadata")).json()
    [claims] = [r for r in meta["rest"][0]["resource"] if r["type"] == "Claim"]
    assert "appeal" in [o["name"] for o in claims.get("operation") or []]

    # without write scope on claims
    r = await api.post(f"/fhir/Claim/{fresh['id']}/$appeal", headers={"x-test-scope": "user/Claim.rs"})
    assert r.status_code == 403


async def test_an_appeal_past_its_deadline_is_refused(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    denied, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, require_auth)
    [task] = await denial_tasks(api)
    # the deadline passed (the Task's restriction is the appeal deadline)
    task["restriction"] = {"period": {"end": "2026-01-31"}}
    assert (await api.put(f"/fhir/Task/{task['id']}", json=task)).status_code == 200
    docs = await count(api, "DocumentReference")
    r = await api.post(f"/fhir/Claim/{denied['id']}/$appeal")
    assert r.status_code == 422 and "deadline (2026-01-31) has passed" in r.text
    assert await count(api, "DocumentReference") == docs
    assert (await api.get(f"/fhir/Task/{task['id']}")).json().get("output") is None


async def test_a_paid_claim_has_nothing_to_appeal(api, store, tenant, payer_settings, mailbox: Path, demo_bundle,
                                                  route_to_sandbox):
    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, lambda data: None)
    assert lifecycle(claim) in ("paid", "partially-paid")
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 422 and "nothing to appeal" in r.text


async def test_a_claim_rejected_before_adjudication_is_corrected_not_appealed(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    def unknown_member(data: dict[str, Any]) -> None:
        del data["members"][ALVAREZ]

    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, unknown_member)
    assert lifecycle(claim) == "rejected"
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 422 and "correct it" in r.text
    assert await count(api, f"Task?code={TASK_CODES}|appeal-send") == 0


async def test_an_authorization_denial_appealed_with_the_authorization_found_since_is_overturned(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    from tests.app.claims.test_authorizations import authorization

    claim, payer, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, require_auth)
    [denial] = await denial_tasks(api)
    assert code_of(denial, "category") == "authorization"
    # the authorization turns up after the denial (a retro-authorization): the appeal cites it
    auth = authorization(12, ref="AUTH-7788", start="2026-11-01", end="2027-01-31")
    assert (await api.put(f"/fhir/ClaimResponse/{auth['id']}", json=auth)).status_code in (200, 201)
    await adrain(store)
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 201, r.text
    letter = r.json()["entry"][0]["resource"]
    assert f"ClaimResponse/{auth['id']}" in [x["reference"] for x in letter["context"]["related"]]
    text = pdf_text(letter).replace("\n", " ")
    assert "CO-197" in text and "number AUTH-7788, valid 2026-11-01 to 2027-01-31" in text

    assert payer.appeal(await mailed_package(api, letter), NOW)
    [decided] = payer.engine.ledger.summary()["appeals"]
    assert decided["decision"] == "overturn" and "authorization" in decided["enclosures"]
    await collect(store, tenant)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) in ("paid", "partially-paid")
    closed = (await api.get(f"/fhir/Task/{denial['id']}")).json()
    assert closed["status"] == "completed" and out(closed, "appeal-outcome") == ["overturned"]


async def test_a_timely_filing_denial_is_argued_with_the_proof_of_submission(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    def late(data: dict[str, Any]) -> None:
        data["payers"]["MCRDEMO"]["timely_filing_days"] = 1

    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, late)
    [denial] = await denial_tasks(api)
    assert code_of(denial, "category") == "timely-filing"
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 201, r.text
    text = pdf_text(r.json()["entry"][0]["resource"]).replace("\n", " ")
    history = {e["url"]: e["valueInstant"][:10] for e in next(
        x for x in claim["extension"] if x["url"].endswith("claim-lifecycle-history"))["extension"]}
    assert "CO-29" in text and f"first submitted on {history['submitted']}" in text
    assert f"the 999 accepted the file on {history['acknowledged']}" in text
    assert f"the payer accepted the claim (277CA) on {history['accepted']}" in text


async def test_the_sandbox_takes_a_mailed_package_and_an_appeal_over_http(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox, sandbox):
    import httpx

    from tests.flows import queued_claim

    not_necessary(sandbox.state.sandbox.engine.data)
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, demo_bundle)
    await adrain(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox") as payer:
        assert (await payer.post("/sandbox/mailbox/process", params={"now": NOW.isoformat()})).status_code == 200
        await collect(store, tenant)
        assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "denied"
        r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
        assert r.status_code == 201, r.text
        package = await mailed_package(api, r.json()["entry"][0]["resource"])

        # a package naming no claim of the payer's, and a Communication that is no appeal, are refused
        stranger = {**package, "identifier": {"value": "other"}, "entry": package["entry"][1:]}
        assert (await payer.post("/sandbox/appeals/mail", json=stranger)).status_code == 422
        token = (await payer.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "demo-client",
                                                         "client_secret": "demo-secret"})).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        no_appeal = {"resourceType": "Communication", "status": "completed", "category": [{"text": "note"}]}
        refused = await payer.post("/fhir/Communication", json=no_appeal, headers=bearer)
        assert refused.status_code == 422 and "Communication.category" in refused.text
        unknown = {**no_appeal, "category": [{"coding": [{"code": "appeal"}]}],
                   "about": [{"identifier": {"system": "x/patient-control-number", "value": "NOPE"}}]}
        refused = await payer.post("/fhir/Communication", json=unknown, headers=bearer)
        assert refused.status_code == 422 and "Communication.about" in refused.text
        assert (await payer.post("/fhir/Communication", json=no_appeal)).status_code == 401

        mailed = await payer.post("/sandbox/appeals/mail", params={"now": NOW.isoformat()}, json=package)
        assert mailed.status_code == 200 and mailed.json()["written"][0].startswith("835_appeal_")
        again = await payer.post("/sandbox/appeals/mail", json=package)
        assert again.json()["written"] == []  # decided once
        assert [a["decision"] for a in (await payer.get("/sandbox/ledger")).json()["appeals"]] == ["overturn"]
    await collect(store, tenant)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "paid"


async def test_a_decision_the_payer_says_cannot_be_appealed_is_refused(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    def final(data: dict[str, Any]) -> None:
        not_necessary(data)
        data["payers"]["MCRDEMO"]["not_necessary_remark"] = "N211"

    claim, _, _ = await denied_claim(api, store, tenant, payer_settings, mailbox, demo_bundle, final)
    [denial] = await denial_tasks(api)
    assert code_of(denial, "next-action") == "write-off"
    r = await api.post(f"/fhir/Claim/{claim['id']}/$appeal")
    assert r.status_code == 422 and "remark N211" in r.text
    assert await count(api, "DocumentReference") == 0
