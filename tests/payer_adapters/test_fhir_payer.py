"""fhir-payer against the sandbox's FHIR surface (ASGITransport): PAS-style $submit, pended
answers and $inquire, eligibility, OAuth2 client credentials and private_key_jwt."""
from __future__ import annotations

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.coverageeligibilityresponse import CoverageEligibilityResponse
from joserfc.jwk import RSAKey

from payer_adapters import oauth
from payer_adapters.errors import PayerRejection
from payer_adapters.registry import create_adapter
from payer_adapters.x12 import InMemoryControlNumbers

from .conftest import claim_package, eligibility_package

SECRET = {"base_url": "http://sandbox/fhir", "auth": "client_secret", "token_url": "http://sandbox/oauth/token",
          "client_id": "demo-client", "client_secret": "demo-secret"}


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    oauth.clear_cache()
    yield
    oauth.clear_cache()


def make(http, **settings):
    return create_adapter("fhir-payer", {**SECRET, **settings}, http=http, control_numbers=InMemoryControlNumbers())


async def test_submit_returns_the_claim_response_inline(http, ledger):
    a = make(http)
    pkg = claim_package("enc-brooks-1")
    receipt = await a.submit_claims([pkg], idempotency_key="fhir-1")
    cr = receipt.synchronous_response
    ClaimResponse.model_validate(cr)
    assert cr["outcome"] == "complete" and cr["request"]["reference"] == "Claim/claim-enc-brooks-1"
    assert cr["payment"]["amount"]["value"] == pytest.approx(113.77)
    reasons = [a["reason"]["coding"][0]["code"] for i in cr["item"] for a in i["adjudication"] if "reason" in a]
    assert reasons == ["45", "3", "45"]
    assert ledger()["claim_count"] == 1


async def test_same_key_again_and_readback_do_not_bill_twice(http, ledger):
    a = make(http)
    pkg = claim_package("enc-brooks-1")
    first = await a.submit_claims([pkg], idempotency_key="fhir-dup")
    found = await a.find_submission("fhir-dup")
    assert found is not None and found.replayed
    assert found.synchronous_response["id"] == first.synchronous_response["id"]
    again = await a.submit_claims([pkg], idempotency_key="fhir-dup")
    assert again.synchronous_response == first.synchronous_response
    assert ledger()["claim_count"] == 1
    assert await a.find_submission("never-sent") is None


async def test_token_is_cached_across_calls(http, sandbox_app):
    a = make(http)
    await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="t1")
    await a.submit_claims([claim_package("enc-alvarez-1")], idempotency_key="t2")
    await a.check_eligibility(eligibility_package("pat-brooks", "cov-brooks"), timeout=5)
    assert sandbox_app.state.sandbox.fhir.tokens_issued == 1


async def test_expired_token_is_refetched_once(http, sandbox_app):
    a = make(http)
    await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="e1")
    sandbox_app.state.sandbox.fhir.tokens.clear()  # the payer forgot our token
    await a.submit_claims([claim_package("enc-alvarez-1")], idempotency_key="e2")
    assert sandbox_app.state.sandbox.fhir.tokens_issued == 2


async def test_wrong_secret_is_a_rejection(http):
    with pytest.raises(PayerRejection):
        await make(http, client_secret="nope").submit_claims([claim_package("enc-brooks-1")], idempotency_key="x")


async def test_private_key_jwt(http, sandbox_app):
    key = RSAKey.generate_key(2048, parameters={"kid": "tb-1"})
    sandbox_app.state.sandbox.config.jwks["tb-backend"] = {"keys": [key.as_dict(private=False)]}
    a = make(http, auth="private_key_jwt", client_id="tb-backend", private_key=key.as_dict(private=True),
             algorithm="RS384", client_secret=None)
    receipt = await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="jwt-1")
    assert receipt.synchronous_response["outcome"] == "complete"
    other = RSAKey.generate_key(2048, parameters={"kid": "tb-1"})
    oauth.clear_cache()
    bad = make(http, auth="private_key_jwt", client_id="tb-backend", private_key=other.as_dict(private=True))
    with pytest.raises(PayerRejection):
        await bad.submit_claims([claim_package("enc-alvarez-1")], idempotency_key="jwt-2")


async def test_pended_claim_is_completed_by_inquire(http, sandbox_app):
    sandbox_app.state.sandbox.config.pended_inquiries = 1
    a = make(http)

    def with_auth(claim, res):
        claim["insurance"][0]["preAuthRef"] = ["WCAUTH-1"]
    pkg = claim_package("enc-kim-1", edit=with_auth)
    receipt = await a.submit_claims([pkg], idempotency_key="pend-1")
    assert receipt.synchronous_response["outcome"] == "queued"
    assert a.capabilities.inquire
    still = await a.inquire({"claim": pkg.claim})
    assert still["outcome"] == "queued"
    final = await a.inquire({"claim": pkg.claim})
    ClaimResponse.model_validate(final)
    assert final["outcome"] == "complete" and final["payment"]["amount"]["value"] > 0


async def test_front_end_rejection_comes_back_as_an_error_claim_response(http):
    a = make(http)
    receipt = await a.submit_claims([claim_package("enc-brooks-1", member="ZZZ0000")], idempotency_key="rej")
    cr = receipt.synchronous_response
    assert cr["outcome"] == "error" and cr["error"][0]["code"]["coding"][0]["code"] == "A7:164"


async def test_realtime_eligibility(http):
    a = make(http)
    assert a.capabilities.realtime_eligibility
    result = await a.check_eligibility(eligibility_package("pat-brooks", "cov-brooks"), timeout=5)
    resp = result.response
    CoverageEligibilityResponse.model_validate(resp)
    assert not result.queued and resp["outcome"] == "complete"
    item = resp["insurance"][0]["item"][0]
    visit = next(b for b in item["benefit"] if b["type"]["coding"][0]["code"] == "visit")
    assert (visit["allowedUnsignedInt"], visit["usedUnsignedInt"]) == (30, 4)
    inactive = await a.check_eligibility(eligibility_package("pat-brooks", "cov-brooks", member="ACMLAPSED001"),
                                         timeout=5)
    assert inactive.response["insurance"][0]["inforce"] is False


async def test_batches_are_refused_because_pas_is_one_claim_per_bundle(http):
    with pytest.raises(ValueError):
        await make(http).submit_claims([claim_package("enc-brooks-1"), claim_package("enc-kim-1")],
                                       idempotency_key="b")
