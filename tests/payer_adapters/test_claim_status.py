"""Claim status through every adapter kind against the sandbox payer, which answers from its
record of the claims it received: a 276 file answered by a 277 in the mailbox, the clearinghouse's
claim status API, the FHIR payer's ``Claim/$inquire``. Found claims report their adjudication
(F1 paid with the amount and the payer's claim number), a claim the payer never took in (a lost
file, the ``lose`` fault) is not on file (A4:35)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.registry import create_adapter
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import InMemoryControlNumbers, StatusRequest276, decode, validate
from payer_adapters.x12.validate import pyx12_available_for

from .conftest import NOW, claim_package

PAYER_CLAIM_NUMBER = vocabulary.PAYER_CLAIM_NUMBER


def sent(encounter: str, **kw: Any):  # type: ignore[no-untyped-def]
    """A claim package whose Claim is marked sent (only a sent claim has a status at the payer)."""
    def mark(claim: dict[str, Any], res: list[dict[str, Any]]) -> None:
        claim.setdefault("extension", []).append({"url": vocabulary.CLAIM_LIFECYCLE, "valueCode": "submitted"})
    return claim_package(encounter, edit=mark, **kw)


def lifecycle_of(response: dict[str, Any]) -> str:
    return next(e["valueCoding"]["code"] for e in response["extension"] if e["url"] == vocabulary.CLAIM_STATUS_LIFECYCLE)


def stc_of(response: dict[str, Any]) -> str:
    ext = next(e for e in response["extension"] if e["url"] == vocabulary.X12_STC_STATUS)
    return ":".join(c["code"] for c in ext["extension"][0]["valueCodeableConcept"]["coding"])


# -- X12: 276 in the mailbox, 277 back ------------------------------------------------------------
@pytest.fixture
def mailbox(tmp_path: Path) -> Mailbox:
    return Mailbox(tmp_path / "mb", Engine(load_config()), use_pyx12=False)


async def test_x12_276_out_277_back_found_and_not_found(mailbox):
    adapter = create_adapter("x12-directory", {"root": str(mailbox.root)}, http=httpx.AsyncClient(),
                             control_numbers=InMemoryControlNumbers(start=61))
    on_file, lost = sent("enc-alvarez-1"), sent("enc-alvarez-2")
    await adapter.submit_claims([on_file], idempotency_key="sent-1")
    assert mailbox.process(NOW)[0] == "999_sent-1.x12"  # adjudicated at once: 999, 277CA, 835
    for m in await adapter.fetch_responses():
        await adapter.acknowledge(m)

    for pkg, key in ((on_file, "ask-found"), (lost, "ask-lost")):
        result = await adapter.claim_status(pkg, key=key)
        assert result.queued and result.reference == f"276_{key}.x12" and result.response is None
        again = await adapter.claim_status(pkg, key=key)  # the same inquiry again: no second file
        assert again.reference == result.reference
        data = (mailbox.root / "inbox" / result.reference).read_bytes()
        assert pyx12_available_for(data)  # pyx12 checks it with the product's 005010X212 map
        assert validate(data) == []
        (inquiry,) = [q for r in decode(data).of_type(StatusRequest276) for q in r.inquiries]
        assert inquiry.trace == pkg.patient_control_number and inquiry.member_id == "1EG4TE5MK73"
    assert sorted(p.name for p in (mailbox.root / "inbox").iterdir()) == ["276_ask-found.x12", "276_ask-lost.x12"]

    written = mailbox.process(NOW)
    assert sorted(written) == ["277_ask-found.x12", "277_ask-lost.x12", "999_ask-found.x12", "999_ask-lost.x12"]
    messages = {Path(m.name).name: m for m in await adapter.fetch_responses()}
    assert {m.kind for m in messages.values()} == {"999", "277"}
    answers = {}
    for name in ("277_ask-found.x12", "277_ask-lost.x12"):
        data = messages[name].data
        assert validate(data) == []
        (status,) = decode(data).claim_statuses
        answers[name] = status
    found, missing = answers["277_ask-found.x12"], answers["277_ask-lost.x12"]
    assert found.claim_key == on_file.patient_control_number and found.current.category == "F1"
    assert found.lifecycle in ("paid", "denied") and found.payer_claim_number.startswith("SBX")
    assert found.billed is not None
    assert missing.claim_key == lost.patient_control_number
    assert (missing.current.category, missing.current.code, missing.lifecycle) == ("A4", "35", "not-found")
    assert missing.payer_claim_number is None


# -- clearinghouse JSON: the claim status endpoint ----------------------------------------------
async def test_clearinghouse_claim_status_found_and_not_found(http, sandbox_app, ledger):
    adapter = create_adapter("clearinghouse-json", {"base_url": "http://sandbox", "api_key": "test_sandbox_key"},
                             http=http, control_numbers=InMemoryControlNumbers())
    pkg = sent("enc-brooks-1")
    await adapter.submit_claims([pkg], idempotency_key="chc-found")
    found = (await adapter.claim_status(pkg, key="q1")).response
    assert found["resourceType"] == "ClaimResponse" and stc_of(found).startswith("F")
    assert lifecycle_of(found) in ("paid", "denied")
    assert any(i["system"] == PAYER_CLAIM_NUMBER for i in found["identifier"])
    assert found["request"]["identifier"]["value"] == pkg.patient_control_number

    lost = sent("enc-maxwell-1")
    sandbox_app.state.sandbox.faults.set("/medicalnetwork/professionalclaims/v3/submission", "lose")
    receipt = await adapter.submit_claims([lost], idempotency_key="chc-lost")
    assert receipt.submission_id.startswith("SBXC")  # the clearinghouse said it took the claim…
    assert lost.patient_control_number not in ledger()["by_patient_control_number"]  # …and kept nothing
    missing = (await adapter.claim_status(lost, key="q2")).response
    assert (stc_of(missing), lifecycle_of(missing), missing["outcome"]) == ("A4:35", "not-found", "error")
    r = await http.post("/medicalnetwork/claimstatus/v2", json={"tradingPartnerServiceId": "ACME01"},
                        headers={"Authorization": "Key test_sandbox_key"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "33"


# -- FHIR payer: $inquire ------------------------------------------------------------------------
async def test_fhir_payer_inquire_found_and_not_found(http, sandbox_app, ledger):
    adapter = create_adapter("fhir-payer", {"base_url": "http://sandbox/fhir", "auth": "client_secret",
                                            "token_url": "http://sandbox/oauth/token", "client_id": "demo-client",
                                            "client_secret": "demo-secret"},
                             http=http, control_numbers=InMemoryControlNumbers())
    pkg = sent("enc-alvarez-1")
    receipt = await adapter.submit_claims([pkg], idempotency_key="fhir-found")
    found = (await adapter.claim_status(pkg, key="q1")).response
    assert found["outcome"] == "complete" and found["id"] == receipt.synchronous_response["id"]

    lost = sent("enc-alvarez-2")
    sandbox_app.state.sandbox.faults.set("/fhir/Claim/$submit", "lose")
    receipt = await adapter.submit_claims([lost], idempotency_key="fhir-lost")
    assert receipt.synchronous_response["outcome"] == "queued"  # pended, as far as we can tell
    assert ledger()["claim_count"] == 1
    assert (await adapter.claim_status(lost, key="q2")).response is None  # no ClaimResponse: none on file
