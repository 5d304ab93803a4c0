"""The patient's share end to end: a claim through the sandbox payer (837P → 999/277CA/835), the
PR adjustments of the posted EOB become the patient's balance, payments by API and command line
lower it, a statement (Invoice + PDF) bills what is due, and a 271 answer gives a visit estimate."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pypdf

from app.fhir.validation import check_resource

from tests.flows import NOW, adrain, claim_for, connect, load_practice, payer_answers_and_collect

GROUP = "https://x12.org/codes/claim-adjustment-group-codes"
PATIENT_PAYMENT = "https://therabridge.dev/fhir/StructureDefinition/patient-payment"
PAYMENT_CREDIT = "https://therabridge.dev/fhir/StructureDefinition/payment-credit"
STATEMENT_DOCUMENT = "https://therabridge.dev/fhir/StructureDefinition/statement-document"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"


def pr_total(eob: dict) -> Decimal:
    """Σ of the EOB's PR adjustments, as the 835 gave them (lines and claim level)."""
    adjudications = [a for item in eob.get("item", []) for a in item.get("adjudication", [])]
    adjudications += eob.get("adjudication", [])
    return sum((Decimal(str(a["amount"]["value"])) for a in adjudications
                if any(c["system"] == GROUP and c["code"] == "PR" for c in a["category"]["coding"])), Decimal("0"))


def money(params: dict, name: str) -> Decimal:
    return next(Decimal(str(p["valueMoney"]["value"])) for p in params["parameter"] if p["name"] == name)


async def balance(api, patient: str = "pat-alvarez") -> Decimal:
    r = await api.post(f"/fhir/Patient/{patient}/$balance")
    assert r.status_code == 200, r.text
    check_resource(r.json(), expected_type="Parameters", served=False)
    return money(r.json(), "balance")


def payment(amount, patient: str = "pat-alvarez", *, kind: str = "payment", credit: bool = False) -> dict:
    ext = [{"url": PATIENT_PAYMENT, "valueCode": "card"}]
    if credit:
        ext.append({"url": PAYMENT_CREDIT, "valueBoolean": True})
    return {"resourceType": "PaymentReconciliation", "extension": ext, "status": "active",
            "created": "2026-12-01T10:00:00Z", "paymentDate": "2026-12-01",
            "paymentAmount": {"value": amount, "currency": "USD"}, "paymentIdentifier": {"value": "R-1001"},
            "detail": [{"type": {"coding": [{"system": PAYMENT_TYPE, "code": kind}]},
                        "submitter": {"reference": f"Patient/{patient}"}, "date": "2026-12-01",
                        "amount": {"value": amount, "currency": "USD"}}]}


async def count(api, query: str, headers: dict | None = None) -> int:
    r = await api.get(f"/fhir/{query}{'&' if '?' in query else '?'}_summary=count", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


async def adjudicated(api, store, tenant, payer_settings, mailbox: Path, demo_bundle) -> dict:
    """The demo practice with Medicare over an X12 mailbox; the Alvarez visit's claim sent, and
    the sandbox payer's 835 posted. Returns the EOB."""
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    await payer_answers_and_collect(store, tenant, mailbox)
    eobs = (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()
    assert eobs["total"] == 1
    return eobs["entry"][0]["resource"]


async def test_balance_payments_and_statement(api, store, tenant, payer_settings, mailbox, demo_bundle,
                                              route_to_sandbox, database_url):
    eob = await adjudicated(api, store, tenant, payer_settings, mailbox, demo_bundle)
    owed = pr_total(eob)
    assert owed > 0  # Medicare: what is left of the deductible, then 20 % coinsurance

    # The balance is Σ PR, and the same when asked again; the Account is made once.
    assert await balance(api) == owed
    assert await balance(api) == owed
    accounts = (await api.get("/fhir/Account?patient=Patient/pat-alvarez")).json()
    assert accounts["total"] == 1
    account = accounts["entry"][0]["resource"]
    assert account["type"]["coding"][0]["code"] == "PBILLACCT"
    assert account["guarantor"][0]["party"]["reference"] == "Patient/pat-alvarez"
    assert account["owner"]["reference"] == "Organization/demo-practice"

    # A payment through the API lowers it.
    r = await api.post("/fhir/PaymentReconciliation", json=payment(10.00))
    assert r.status_code == 201, r.text
    assert await balance(api) == owed - Decimal("10.00")

    # Bad payments: refused with the element named, nothing written.
    before = await count(api, "PaymentReconciliation")
    for body, status, where in ((payment(-5), 400, "PaymentReconciliation.detail[0].amount"),
                                (payment(0), 400, "PaymentReconciliation.detail[0].amount"),
                                (payment(1.005), 400, "PaymentReconciliation.detail[0].amount"),
                                (payment(float(owed) + 100), 422, "PaymentReconciliation.detail[0].amount"),
                                (payment(5, kind="adjustment") | {"detail": []}, 400, "PaymentReconciliation.detail"),
                                (payment(5, "pat-nobody"), 404, "PaymentReconciliation.detail[0].submitter")):
        r = await api.post("/fhir/PaymentReconciliation", json=body)
        assert r.status_code == status, r.text
        issue = r.json()["issue"][0]
        assert issue["expression"] == [where], issue
    assert await count(api, "PaymentReconciliation") == before
    assert await balance(api) == owed - Decimal("10.00")

    # A recorded patient payment is not changed or deleted by a client.
    mine = (await api.get("/fhir/PaymentReconciliation?submitter=Patient/pat-alvarez")).json()
    assert mine["total"] == 1
    r_id = mine["entry"][0]["resource"]["id"]
    assert (await api.delete(f"/fhir/PaymentReconciliation/{r_id}")).status_code == 422

    # The command line: a bad amount writes nothing (exit 1); a good one prints the new balance.
    bad = cli(database_url, "payments", "record", "--tenant", tenant, "--patient", "pat-alvarez", "--amount", "-3")
    assert bad.returncode == 1 and "more than zero" in bad.stderr
    bad = cli(database_url, "payments", "record", "--tenant", tenant, "--patient", "pat-alvarez", "--amount", "abc")
    assert bad.returncode == 1
    assert await count(api, "PaymentReconciliation") == before
    ok = cli(database_url, "payments", "record", "--tenant", tenant, "--patient", "pat-alvarez", "--amount", "5.50",
             "--date", "2026-12-02", "--method", "check", "--reference", "CHK 311")
    assert ok.returncode == 0, ok.stderr
    expected = owed - Decimal("15.50")
    assert f'"balance": "{expected}"' in ok.stdout
    assert await balance(api) == expected

    # The statement: an Invoice whose totalNet is Σ PR − payments, and its PDF.
    r = await api.post("/fhir/Patient/pat-alvarez/$statement")
    assert r.status_code == 201, r.text
    invoice = r.json()
    check_resource(invoice, expected_type="Invoice")  # what the server wrote is valid R4
    assert invoice["status"] == "issued" and invoice["subject"]["reference"] == "Patient/pat-alvarez"
    assert invoice["account"]["reference"] == f"Account/{account['id']}"
    assert Decimal(str(invoice["totalNet"]["value"])) == expected
    informational = sum((Decimal(str(c["amount"]["value"])) for item in invoice["lineItem"]
                         for c in item["priceComponent"] if c["type"] == "informational"), Decimal("0"))
    assert informational == owed
    paid = sum((Decimal(str(c["amount"]["value"])) for c in invoice["totalPriceComponent"]
                if c["code"]["coding"][0]["code"] == "patient-payment"), Decimal("0"))
    assert paid == Decimal("15.50")
    for item in invoice["lineItem"]:  # charge − insurance paid − payer adjustments = the patient's share
        comps = {t: sum((Decimal(str(c["amount"]["value"])) for c in item["priceComponent"] if c["type"] == t),
                        Decimal("0")) for t in ("base", "deduction", "discount", "informational")}
        assert comps["base"] - comps["deduction"] - comps["discount"] == comps["informational"]
    doc_ref = next(e["valueReference"]["reference"] for e in invoice["extension"] if e["url"] == STATEMENT_DOCUMENT)
    doc = (await api.get(f"/fhir/{doc_ref}")).json()
    check_resource(doc, expected_type="DocumentReference")
    check_resource(account, expected_type="Account")
    assert doc["context"]["related"][0]["reference"] == f"Invoice/{invoice['id']}"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    body = base64.b64decode(attachment["data"])
    assert body.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)
    assert f"${expected:,.2f}" in text and "Riverside Therapy Associates" in text
    assert "Account number" in text and "Due date" in text
    assert "97110" not in text  # plain-language service names, not codes or their descriptors

    # Asked again the same day for the same balance: the same statement.
    again = await api.post("/fhir/Patient/pat-alvarez/$statement")
    assert again.status_code == 200 and again.json()["id"] == invoice["id"]
    assert await count(api, "Invoice") == 1 and await count(api, "DocumentReference?patient=Patient/pat-alvarez") == 1
    for written in (f"Invoice/{invoice['id']}", doc_ref, f"Account/{account['id']}"):  # audited with the writes
        assert await count(api, f"AuditEvent?entity={written}&action=C",
                           {"x-test-scope": "user/AuditEvent.rs"}) == 1, written

    # The statement run finds that one already issued; nothing new.
    run = cli(database_url, "statements", "run", "--tenant", tenant)
    assert run.returncode == 0, run.stderr
    assert "0 statement(s) issued, 1 already issued today" in run.stdout
    assert await count(api, "Invoice") == 1


async def test_statement_run_is_once_per_day_and_balance(api, store, tenant, payer_settings, mailbox, demo_bundle,
                                                         route_to_sandbox, database_url):
    eob = await adjudicated(api, store, tenant, payer_settings, mailbox, demo_bundle)
    first = cli(database_url, "statements", "run", "--tenant", tenant, "--date", "2026-12-05")
    assert first.returncode == 0, first.stderr
    assert "1 statement(s) issued" in first.stdout
    second = cli(database_url, "statements", "run", "--tenant", tenant, "--date", "2026-12-05")
    assert "0 statement(s) issued, 1 already issued today" in second.stdout
    invoices = (await api.get("/fhir/Invoice?patient=Patient/pat-alvarez")).json()
    assert invoices["total"] == 1
    assert Decimal(str(invoices["entry"][0]["resource"]["totalNet"]["value"])) == pr_total(eob)
    # Unpaid after its due date (30 days): the next statement is a past-due notice naming the last.
    late = cli(database_url, "statements", "run", "--tenant", tenant, "--date", "2027-01-10")
    assert "1 statement(s) issued" in late.stdout, late.stderr
    latest = (await api.get("/fhir/Invoice?patient=Patient/pat-alvarez&date=2027-01-10")).json()["entry"][0]["resource"]
    notes = [n["text"] for n in latest["note"]]
    assert any(n.startswith("PAST DUE") for n in notes)
    assert f"Previous statement 2026-12-05: amount due {pr_total(eob):.2f}." in notes
    doc = (await api.get("/fhir/" + latest["extension"][0]["valueReference"]["reference"])).json()
    text = pypdf.PdfReader(io.BytesIO(base64.b64decode(doc["content"][0]["attachment"]["data"]))).pages[0].extract_text()
    assert "PAST DUE" in text and "Previous statement of 2026-12-05" in text
    # Paid in full: the next run bills nobody.
    r = await api.post("/fhir/PaymentReconciliation", json=payment(float(pr_total(eob))))
    assert r.status_code == 201, r.text
    third = cli(database_url, "statements", "run", "--tenant", tenant, "--date", "2027-01-11")
    assert "0 statement(s) issued, 0 already issued today, 1 patient(s) owe nothing" in third.stdout
    # An overpayment is only taken as a credit.
    assert (await api.post("/fhir/PaymentReconciliation", json=payment(1))).status_code == 422
    assert (await api.post("/fhir/PaymentReconciliation", json=payment(1, credit=True))).status_code == 201
    assert await balance(api) == Decimal("-1.00")


async def test_other_practice_and_other_patient_see_nothing(api, app, store, tenant, demo_bundle, database_url):
    import uuid

    import httpx

    await load_practice(api, demo_bundle)
    elsewhere = "t-" + uuid.uuid4().hex[:12]  # another practice, without that patient
    store.ensure_tenant(elsewhere)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 headers={"x-test-tenant": elsewhere}) as other:
        r = await other.post("/fhir/Patient/pat-alvarez/$statement")
        assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
        r = await other.post("/fhir/PaymentReconciliation", json=payment(5))
        assert r.status_code == 404, r.text
        assert (await other.get("/fhir/Invoice", params={"_summary": "count"})).json()["total"] == 0
        refused = cli(database_url, "payments", "record", "--tenant", elsewhere, "--patient", "pat-alvarez",
                      "--amount", "5")
        assert refused.returncode == 1 and "not a patient of this practice" in refused.stderr
        for rtype in ("Account", "Invoice", "PaymentReconciliation", "DocumentReference"):
            assert (await other.get(f"/fhir/{rtype}", params={"_summary": "count"})).json()["total"] == 0
    # A token for one patient cannot ask about another's account.
    scoped = {"x-test-scope": "patient/*.rs", "x-test-patient": "pat-brooks"}
    r = await api.post("/fhir/Patient/pat-alvarez/$balance", headers=scoped)
    assert r.status_code == 404, r.text
    r = await api.post("/fhir/Patient/pat-brooks/$balance", headers=scoped)
    assert r.status_code == 200, r.text
    # A biller may; an auditor may not.
    biller = {"x-test-scope": "user/Patient.rs user/Account.crus user/ExplanationOfBenefit.rs user/Invoice.rs "
                              "user/DocumentReference.rs"}
    assert (await api.post("/fhir/Patient/pat-alvarez/$statement", headers=biller)).status_code == 201
    auditor = {"x-test-scope": "user/AuditEvent.rs"}
    assert (await api.post("/fhir/Patient/pat-alvarez/$statement", headers=auditor)).status_code == 403
    assert (await api.get("/fhir/Invoice", params={"_summary": "count"})).json()["total"] == 1


async def _eligibility_answer(api, store, tenant, mailbox: Path) -> dict:
    """Alvarez's Medicare coverage asked over the X12 mailbox (270); the sandbox's 271 posted."""
    from payer_adapters.sandbox import Engine, Mailbox, load_config
    from app.payers.inbound import queue_collection

    r = await api.post("/fhir/Coverage/cov-alvarez/$eligibility-request",
                       params={"servicedDate": "2026-11-23", "discipline": "OT"})
    assert r.status_code == 201, r.text
    assert (await api.post(f"/fhir/CoverageEligibilityRequest/{r.json()['id']}/$submit")).status_code == 202
    await adrain(store)
    Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)
    found = (await api.get("/fhir/CoverageEligibilityResponse?patient=Patient/pat-alvarez")).json()
    assert found["total"] == 1
    return found["entry"][0]["resource"]


async def test_visit_estimate_from_the_271(api, store, tenant, payer_settings, mailbox, demo_bundle,
                                           route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    planned = {"resourceType": "Encounter", "id": "enc-alvarez-next", "status": "planned",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/pat-alvarez"}}
    assert (await api.put("/fhir/Encounter/enc-alvarez-next", json=planned)).status_code == 201

    # No eligibility answer yet: a clear outcome, nothing invented.
    r = await api.post("/fhir/Encounter/enc-alvarez-next/$estimate", params={"code": "97530*2,97110"})
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert "No eligibility answer" in issue["diagnostics"] and issue["expression"] == ["Encounter.subject"]

    answer = await _eligibility_answer(api, store, tenant, mailbox)
    r = await api.post("/fhir/Encounter/enc-alvarez-next/$estimate", params={"code": "97530*2,97110"})
    assert r.status_code == 200, r.text
    est = r.json()
    check_resource(est, expected_type="Parameters", served=False)
    # The sandbox's Medicare member has $83 of the deductible left and 20 % coinsurance; the
    # charge master expects 2 × $35 + $29 = $99 allowed: $83 deductible + 20 % of $16.
    assert money(est, "expectedAllowed") == Decimal("99.00")
    assert money(est, "charge") == Decimal("175.00")
    assert money(est, "deductible") == Decimal("83.00")
    assert money(est, "coinsurance") == Decimal("3.20")
    assert money(est, "copay") == Decimal("0.00")
    assert money(est, "patientAmount") == Decimal("86.20")
    source = next(p["valueReference"]["reference"] for p in est["parameter"] if p["name"] == "eligibility")
    assert source == f"CoverageEligibilityResponse/{answer['id']}"

    bad = await api.post("/fhir/Encounter/enc-alvarez-next/$estimate", params={"code": "97530*x"})
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["code"]
    assert (await api.post("/fhir/Encounter/nope/$estimate", params={"code": "97530"})).status_code == 404


def _claim(cid: str, insurance: list[dict], **extra) -> dict:
    return {"resourceType": "Claim", "id": cid, "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "claim", "patient": {"reference": "Patient/pat-alvarez"}, "created": "2026-11-20",
            "provider": {"reference": "Organization/demo-practice"}, "priority": {"coding": [{"code": "normal"}]},
            "insurance": insurance,
            "item": [{"sequence": 1, "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                                                       "code": "97530"}]},
                      "servicedDate": "2026-11-18", "encounter": [{"reference": "Encounter/enc-alvarez-1"}]}], **extra}


def _eob(eid: str, claim: str, pr: tuple[str, str], paid: str, charge: str = "60.00") -> dict:
    amount = lambda v: {"value": float(v), "currency": "USD"}  # noqa: E731
    return {"resourceType": "ExplanationOfBenefit", "id": eid, "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "claim", "patient": {"reference": "Patient/pat-alvarez"}, "created": "2026-11-25",
            "insurer": {"reference": "Organization/payer-medicare"}, "provider": {"reference": "Organization/demo-practice"},
            "claim": {"reference": f"Claim/{claim}"}, "outcome": "complete",
            "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov-alvarez"}}],
            "item": [{"sequence": 1, "servicedDate": "2026-11-18",
                      "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97530"}]},
                      "adjudication": [
                          {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                    "code": "submitted"}]}, "amount": amount(charge)},
                          {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                    "code": "benefit"}]}, "amount": amount(paid)},
                          {"category": {"coding": [{"system": GROUP, "code": "PR"}]},
                           "reason": {"coding": [{"system": "https://x12.org/codes/claim-adjustment-reason-codes",
                                                  "code": pr[0]}]}, "amount": amount(pr[1])}]}]}


async def test_what_a_later_payer_still_owes_is_not_billed(api, tenant_store, demo_bundle):
    """A claim whose Claim.insurance lists a payer after the focal one: its PR waits for that
    payer; once the later payer's claim has its EOB, that claim's PR is what the patient owes."""
    await load_practice(api, demo_bundle)
    secondary = {"resourceType": "Coverage", "id": "cov-alvarez-2", "status": "active", "order": 2,
                 "beneficiary": {"reference": "Patient/pat-alvarez"}, "payor": [{"reference": "Organization/payer-acme"}]}
    primary_ins = [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-alvarez"}},
                   {"sequence": 2, "focal": False, "coverage": {"reference": "Coverage/cov-alvarez-2"}}]
    with tenant_store.unit() as unit:
        unit.update("Coverage", "cov-alvarez-2", secondary)
        unit.update("Claim", "c-primary", _claim("c-primary", primary_ins))
        unit.update("ExplanationOfBenefit", "e-primary", _eob("e-primary", "c-primary", ("1", "50.00"), "10.00"))
    r = (await api.post("/fhir/Patient/pat-alvarez/$balance")).json()
    assert money(r, "balance") == Decimal("0.00") and money(r, "pendingOtherPayers") == Decimal("50.00")
    statement = (await api.post("/fhir/Patient/pat-alvarez/$statement")).json()
    assert Decimal(str(statement["totalNet"]["value"])) == Decimal("0.00") and "lineItem" not in statement

    secondary_ins = [{"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/cov-alvarez"}},
                     {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov-alvarez-2"}}]
    with tenant_store.unit() as unit:
        unit.update("Claim", "c-secondary", _claim("c-secondary", secondary_ins,
                                                   related=[{"claim": {"reference": "Claim/c-primary"}}]))
        unit.update("ExplanationOfBenefit", "e-secondary", _eob("e-secondary", "c-secondary", ("2", "12.00"), "48.00"))
    r = (await api.post("/fhir/Patient/pat-alvarez/$balance")).json()
    assert money(r, "balance") == Decimal("12.00") and money(r, "pendingOtherPayers") == Decimal("0.00")
