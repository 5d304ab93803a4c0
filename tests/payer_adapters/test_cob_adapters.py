"""A secondary claim through the API adapters: the CHC v3 JSON body carries the prior payer
(``otherSubscriberInformation``, ``lineAdjudicationInformation``) and the PAS ``$submit`` Bundle
carries the prior payer's ClaimResponse; the sandbox adjudicates each as a secondary claim."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse

from payer_adapters.chc_reports import decode_report
from payer_adapters.clearinghouse_json import claim_json
from payer_adapters.contract import ClaimPackage
from payer_adapters.registry import create_adapter
from payer_adapters.x12 import InMemoryControlNumbers, decode
from payer_adapters.x12.cob import payment_to_claim_response
from payer_adapters.x12.decode_835 import Adjustment, ClaimPayment, Remittance, ServicePayment

from .conftest import claim_package, find

C2 = Decimal("0.01")


def _medicare_payment(claim: dict[str, Any], pcn: str) -> ClaimPayment:
    """Medicare's 835 for ``claim``: per line 10 % contractual (CO-45), 20 % of the rest
    coinsurance (PR-2), the remainder paid."""
    cp = ClaimPayment(pcn, "1", Decimal(0), Decimal(0), Decimal(0), "MB", "MCRICN000042", "11", "1")
    for item in claim["item"]:
        charge = Decimal(str(item["net"]["value"]))
        co = (charge * Decimal("0.10")).quantize(C2)
        pr = ((charge - co) * Decimal("0.20")).quantize(C2)
        code = item["productOrService"]["coding"][0]["code"]
        mods = [m["coding"][0]["code"] for m in item.get("modifier") or []]
        control = item["extension"][0]["valueString"]
        s = ServicePayment("HC", code, mods, charge, charge - co - pr, Decimal(1), service_date=item["servicedDate"],
                           line_control_number=control)
        s.adjustments = [Adjustment("CO", "45", co), Adjustment("PR", "2", pr)]
        cp.services.append(s)
        cp.charge += charge
        cp.paid += s.paid
        cp.patient_responsibility += pr
    return cp


def secondary_package() -> tuple[ClaimPackage, ClaimPayment]:
    """Rosa Alvarez's visit billed to her Acme supplement after Medicare paid."""
    primary = claim_package("enc-alvarez-1", pcn="ALV1PRIMARY")
    claim, res = primary.claim, primary.resources
    rem = Remittance(header=None)  # type: ignore[arg-type]
    rem.payment_date, rem.trace_number = "2026-11-10", "EFT0001"
    cp = _medicare_payment(claim, "ALV1PRIMARY")
    response = payment_to_claim_response(rem, cp, claim, response_id="cr-medicare")
    supplement = {**find(res, "Coverage", "cov-alvarez"), "id": "cov-alvarez-supp", "order": 2,
                  "subscriberId": "ACMSUPP00001", "payor": [{"reference": "Organization/payer-acme"}]}
    claim = {**claim, "id": "claim-alvarez-supp", "identifier": [{"system": claim["identifier"][0]["system"],
                                                                   "value": "ALV1SECOND"}],
             "insurer": {"reference": "Organization/payer-acme"},
             "insurance": [{"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/cov-alvarez"},
                            "claimResponse": {"reference": "ClaimResponse/cr-medicare"}},
                           {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov-alvarez-supp"}}]}
    return ClaimPackage(claim=claim, resources=[*res, supplement, response], patient_control_number="ALV1SECOND"), cp


def test_the_prior_payers_claim_response_is_valid_r4():
    pkg, cp = secondary_package()
    Claim.model_validate(pkg.claim)
    response = pkg.find({"reference": "ClaimResponse/cr-medicare"})
    ClaimResponse.model_validate(response)
    groups = [a["extension"][0]["valueCode"] for i in response["item"] for a in i["adjudication"] if "extension" in a]
    assert groups == ["CO", "PR"] * len(cp.services)
    assert response["identifier"][0]["value"] == "MCRICN000042"


def test_chc_json_carries_the_prior_payer():
    pkg, cp = secondary_package()
    body = claim_json(pkg, key="k-cob", settings={})
    assert body["tradingPartnerServiceId"] == "ACME01"
    assert body["subscriber"]["memberId"] == "ACMSUPP00001"
    assert body["subscriber"]["paymentResponsibilityLevelCode"] == "S"
    info = body["claimInformation"]
    [other] = info["otherSubscriberInformation"]
    assert other["paymentResponsibilityLevelCode"] == "P" and other["claimFilingIndicatorCode"] == "MB"
    assert Decimal(other["payerPaidAmount"]) == cp.paid
    assert Decimal(other["remainingPatientLiability"]) == cp.patient_responsibility
    assert other["otherPayerName"]["otherPayerIdentifier"] == "MCRDEMO"
    assert other["otherPayerName"]["otherPayerSecondaryIdentifier"] == [{"qualifier": "F8", "identifier": "MCRICN000042"}]
    assert other["otherSubscriberName"]["otherInsuredIdentifier"] == "1EG4TE5MK73"
    total_cas = Decimal(0)
    for line, svc in zip(info["serviceLines"], cp.services):
        [adj] = line["lineAdjudicationInformation"]
        cas = sum(Decimal(d["adjustmentAmount"]) for g in adj["claimAdjustmentInformation"] for d in g["adjustmentDetails"])
        assert Decimal(line["professionalService"]["lineItemChargeAmount"]) == Decimal(adj["serviceLinePaidAmount"]) + cas
        assert adj["otherPayerPrimaryIdentifier"] == "MCRDEMO" and adj["adjudicationOrPaymentDate"] == "20261110"
        total_cas += cas
    assert Decimal(info["claimChargeAmount"]) == Decimal(other["payerPaidAmount"]) + total_cas
    primary = claim_json(claim_package("enc-alvarez-1"), key="k-p", settings={})
    assert "otherSubscriberInformation" not in primary["claimInformation"]
    assert primary["subscriber"]["paymentResponsibilityLevelCode"] == "P"


async def test_chc_secondary_is_paid_by_the_sandbox_against_the_primary(http, ledger):
    pkg, cp = secondary_package()
    adapter = create_adapter("clearinghouse-json", {"base_url": "http://sandbox", "api_key": "test_sandbox_key"},
                             http=http, control_numbers=InMemoryControlNumbers())
    await adapter.submit_claims([pkg], idempotency_key="chc-cob-1")
    assert ledger()["by_member"] == {"ACMSUPP00001": 1}
    remits = [m for m in await adapter.fetch_responses() if m.kind == "835"]
    msg = remits[0]
    [rem] = (decode_report(msg.data, kind="835") if msg.content_type == "json" else decode(msg.data)).remittances
    [paid] = rem.claims
    assert paid.status == "2" and 0 < paid.paid <= cp.patient_responsibility
    assert {a.reason for s in paid.services for a in s.adjustments if a.group == "OA"} == {"23"}


async def test_pas_bundle_carries_the_claim_response_and_the_sandbox_pays_the_rest(http, ledger):
    pkg, cp = secondary_package()
    adapter = create_adapter("fhir-payer", {"base_url": "http://sandbox/fhir", "auth": "client_secret",
                                            "token_url": "http://sandbox/oauth/token", "client_id": "demo-client",
                                            "client_secret": "demo-secret"},
                             http=http, control_numbers=InMemoryControlNumbers())
    receipt = await adapter.submit_claims([pkg], idempotency_key="pas-cob-1")
    cr = receipt.synchronous_response
    paid = Decimal(str(cr["payment"]["amount"]["value"]))
    assert cr["outcome"] == "complete" and 0 < paid <= cp.patient_responsibility
    reasons = {a["reason"]["coding"][0]["code"] for i in cr["item"] for a in i["adjudication"] if "reason" in a}
    assert "23" in reasons  # the prior payer's part of the charge
    assert ledger()["by_member"] == {"ACMSUPP00001": 1}
