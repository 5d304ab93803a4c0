"""clearinghouse-json against the sandbox's CHC v3 surface (ASGITransport)."""
from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.coverageeligibilityresponse import CoverageEligibilityResponse

from payer_adapters.errors import PayerRejection
from payer_adapters.registry import create_adapter
from payer_adapters.chc_reports import decode_report, report_kind
from payer_adapters.clearinghouse_json import claim_json
from payer_adapters.x12 import InMemoryControlNumbers, validate

from .conftest import claim_package, eligibility_package, find

SETTINGS = {"base_url": "http://sandbox", "api_key": "test_sandbox_key"}


def make(http, **settings):
    return create_adapter("clearinghouse-json", {**SETTINGS, **settings}, http=http,
                          control_numbers=InMemoryControlNumbers())


def test_claim_json_maps_the_fhir_claim():
    def medicare(claim, res):
        find(res, "Coverage", "cov-alvarez")["type"]["coding"].append(
            {"system": "https://therabridge.dev/fhir/CodeSystem/x12-claim-filing-indicator", "code": "MB"})
    pkg = claim_package("enc-alvarez-2", edit=medicare)
    body = claim_json(pkg, key="k1", settings={})
    info = body["claimInformation"]
    assert body["tradingPartnerServiceId"] == "MCRDEMO" and body["subscriber"]["memberId"] == "1EG4TE5MK73"
    assert body["billing"]["npi"] == "1345678902" and body["billing"]["employerId"] == "741234567"
    assert info["patientControlNumber"] == pkg.patient_control_number and info["claimFilingCode"] == "MB"
    assert info["claimChargeAmount"] == "175.00"
    assert info["healthCareCodeInformation"][0] == {"diagnosisTypeCode": "ABK", "diagnosisCode": "M6281"}
    first = info["serviceLines"][0]
    assert first["professionalService"]["procedureModifiers"] == ["GO", "CO"]
    assert first["providerControlNumber"] == f"{pkg.patient_control_number}-1"
    assert body["referring"]["npi"] == "4444444440"
    assert claim_json(pkg, key="k1", settings={}) == body  # same key, same bytes: safe to resend
    assert claim_json(claim_package("enc-kim-1"), key="k2", settings={})["claimInformation"]["claimFilingCode"] == "WC"


async def test_submit_twice_with_the_same_key_creates_one_claim(http, ledger):
    a = make(http)
    pkg = claim_package("enc-brooks-1")
    first = await a.submit_claims([pkg], idempotency_key="chc-1")
    assert first.transaction_id and not first.replayed and first.raw_response["status"] == "SUCCESS"
    assert await a.find_submission("chc-1") is None  # no lookup by key: resend instead
    again = await a.submit_claims([pkg], idempotency_key="chc-1")
    assert again.replayed and again.transaction_id == first.transaction_id
    assert ledger()["claim_count"] == 1


async def test_same_key_with_a_changed_body_is_a_rejection(http, ledger):
    a = make(http)
    await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="chc-2")
    with pytest.raises(PayerRejection) as err:
        await a.submit_claims([claim_package("enc-alvarez-1")], idempotency_key="chc-2")
    assert err.value.status == 422
    assert ledger()["claim_count"] == 1


async def test_reports_deliver_277ca_and_835_once_acknowledged(http):
    a = make(http)
    pkg = claim_package("enc-brooks-1")
    await a.submit_claims([pkg], idempotency_key="chc-3")
    await a.submit_claims([claim_package("enc-alvarez-1", member="ZZZ000")], idempotency_key="chc-4")
    msgs = await a.fetch_responses()
    assert sorted(m.kind for m in msgs) == ["277CA", "277CA", "835"]
    for m in msgs:
        assert m.content_type == "json" and report_kind(json.loads(m.data)) == m.kind
        # the X12 each JSON report was converted from (Optum's plain report endpoint) is valid 5010
        raw = await http.get(f"/medicalnetwork/reports/v2/{m.name}", headers={"Authorization": "Key test_sandbox_key"})
        assert raw.status_code == 200 and validate(raw.content, use_pyx12=True) == []
    remit = decode_report(next(m for m in msgs if m.kind == "835").data).remittances[0]
    assert remit.claims[0].patient_control_number == pkg.patient_control_number
    rejected = [c for m in msgs if m.kind == "277CA"
                for c in decode_report(m.data).claim_acknowledgments[0].claims if c.outcome == "error"]
    assert len(rejected) == 1
    for m in msgs:
        await a.acknowledge(m)
    assert await a.fetch_responses() == []


async def test_eligibility_maps_to_coverage_eligibility_response(http):
    a = make(http)
    result = await a.check_eligibility(eligibility_package("pat-brooks", "cov-brooks"), timeout=5)
    resp = result.response
    CoverageEligibilityResponse.model_validate(resp)
    item = resp["insurance"][0]["item"][0]
    assert resp["insurance"][0]["inforce"] is True and item["category"]["coding"][0]["code"] == "AD"
    kinds = {b["type"]["coding"][0]["code"]: b for b in item["benefit"]}
    assert kinds["copay"]["allowedMoney"]["value"] == 30
    assert (kinds["visit"]["allowedUnsignedInt"], kinds["visit"]["usedUnsignedInt"]) == (30, 4)
    assert item["authorizationRequired"] is False and "VISIT LIMIT" in item["description"]


async def test_unknown_member_eligibility_is_an_error_response_not_an_exception(http):
    result = await make(http).check_eligibility(
        eligibility_package("pat-brooks", "cov-brooks", member="NOPE123"), timeout=5)
    assert result.response["outcome"] == "error"
    assert result.response["error"][0]["code"]["coding"][0]["code"] == "75"


async def test_bad_api_key_is_a_rejection(http):
    with pytest.raises(PayerRejection):
        await make(http, api_key="wrong").submit_claims([claim_package("enc-brooks-1")], idempotency_key="x")
