"""Every adapter, and the sandbox payer behind it, reads identifiers the way the mapper does
(PROFILE.md, Identifiers): a CARIN-style payer and member, and an external Claim or
CoverageEligibilityRequest that carries only its sender's own identifier."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from payer_adapters import oauth
from payer_adapters.registry import create_adapter
from payer_adapters.clearinghouse_json import claim_json, eligibility_json
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import InMemoryControlNumbers, decode

from .conftest import NOW, claim_package, eligibility_package, find

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
C4BB = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
OWN_CLAIM = {"system": "http://riverside.example/claim", "value": "EXT-1001"}
OWN_REQUEST = {"system": "http://riverside.example/coverageeligibilityrequest", "value": "52345"}
FHIR = {"base_url": "http://sandbox/fhir", "auth": "client_secret", "token_url": "http://sandbox/oauth/token",
        "client_id": "demo-client", "client_secret": "demo-secret"}


def typed(system: str, code: str, value: str, id_system: str | None = None) -> dict[str, Any]:
    ident: dict[str, Any] = {"type": {"coding": [{"system": system, "code": code}]}, "value": value}
    if id_system:
        ident["system"] = id_system
    return ident


def carin_style(res: list[dict[str, Any]], coverage: str) -> None:
    """The payer identified the CARIN way (no system), the member id only as a typed identifier."""
    find(res, "Organization", "payer-acme")["identifier"] = [typed(C4BB, "payerid", "ACME01")]
    cov = find(res, "Coverage", coverage)
    cov["identifier"] = [typed(V2, "MB", cov.pop("subscriberId"), "https://acme.example/memberidentifier")]


def external_claim(claim: dict[str, Any], res: list[dict[str, Any]]) -> None:
    """A Claim another system wrote: its own identifier, an insurer reference without identifier."""
    claim["identifier"] = [dict(OWN_CLAIM)]
    claim["insurer"] = {"reference": "Organization/payer-acme"}
    carin_style(res, "cov-brooks")


def external_request(pkg: Any) -> Any:
    pkg.request["identifier"] = [dict(OWN_REQUEST)]
    pkg.request["insurer"] = {"reference": "Organization/payer-acme"}
    carin_style(pkg.resources, "cov-brooks")
    return pkg


@pytest.fixture
def mailbox(tmp_path: Path) -> Mailbox:
    return Mailbox(tmp_path / "mb", Engine(load_config()))


@pytest.fixture
def x12_adapter(mailbox: Mailbox):
    return create_adapter("x12-directory", {"root": str(mailbox.root)}, http=httpx.AsyncClient(),
                          control_numbers=InMemoryControlNumbers(start=7))


async def test_x12_files_send_an_external_claim_under_its_own_number(x12_adapter, mailbox):
    pkg = claim_package("enc-brooks-1", edit=external_claim)
    assert pkg.patient_control_number == "EXT-1001"
    receipt = await x12_adapter.submit_claims([pkg], idempotency_key="ext-1")
    assert receipt.patient_control_numbers == ["EXT-1001"]
    sent = decode((mailbox.root / "inbox" / receipt.file_name).read_bytes()).transactions[0].claims[0]
    assert (sent.patient_control_number, sent.payer_id, sent.member_id) == ("EXT-1001", "ACME01", "ACM987654321")
    mailbox.process(NOW)
    answers = {m.kind: decode(m.data) for m in await x12_adapter.fetch_responses()}
    acks = answers["277CA"].claim_acknowledgments[0].claims
    assert [(c.patient_control_number, c.outcome) for c in acks] == [("EXT-1001", "queued")]


async def test_x12_files_ask_eligibility_under_the_requests_own_number(x12_adapter, mailbox):
    pkg = external_request(eligibility_package("pat-brooks", "cov-brooks"))
    result = await x12_adapter.check_eligibility(pkg, timeout=5)
    assert result.queued and result.reference == "270_52345.x12"
    mailbox.process(NOW)
    answers = [decode(m.data) for m in await x12_adapter.fetch_responses() if m.kind == "271"]
    found = answers[0].eligibility[0]
    assert found.trace_number == "52345" and found.active


def test_clearinghouse_json_reads_a_carin_payer_and_member():
    pkg = claim_package("enc-brooks-1", edit=external_claim)
    body = claim_json(pkg, key="k1", settings={})
    assert body["tradingPartnerServiceId"] == "ACME01" and body["subscriber"]["memberId"] == "ACM987654321"
    assert body["claimInformation"]["patientControlNumber"] == "EXT-1001"
    elig = eligibility_json(external_request(eligibility_package("pat-brooks", "cov-brooks")), settings={})
    assert elig["tradingPartnerServiceId"] == "ACME01" and elig["subscriber"]["memberId"] == "ACM987654321"


@pytest.fixture
def fhir(http):
    oauth.clear_cache()
    yield create_adapter("fhir-payer", FHIR, http=http, control_numbers=InMemoryControlNumbers())
    oauth.clear_cache()


async def test_fhir_payer_external_claim_is_adjudicated_and_inquired_by_its_own_number(fhir, ledger):
    pkg = claim_package("enc-brooks-1", edit=external_claim)
    receipt = await fhir.submit_claims([pkg], idempotency_key="ext-fhir")
    assert receipt.synchronous_response["outcome"] == "complete"
    assert ledger()["by_patient_control_number"] == {"EXT-1001": 1}
    found = await fhir.inquire({"claim": pkg.claim})  # found by its own number: the claim on file, not a 400
    assert found["outcome"] == "complete" and found["request"]["identifier"]["value"] == "EXT-1001"


async def test_fhir_payer_eligibility_finds_a_typed_member_id(fhir):
    result = await fhir.check_eligibility(external_request(eligibility_package("pat-brooks", "cov-brooks")),
                                          timeout=5)
    assert result.response["insurance"][0]["inforce"] is True
