"""The contract itself: registry, settings validation and error classification at the edge.

MockTransport is used only for failure edges the sandbox cannot produce in-process."""
from __future__ import annotations

import httpx
import pytest

from payer_adapters.contract import PayerAdapter
from payer_adapters.errors import PayerRejection, TransientPayerError
from payer_adapters.registry import adapter_kinds, capabilities, claim_batch_size, create_adapter, register_adapter
from payer_adapters.x12 import InMemoryControlNumbers
from payer_adapters.x12_files import safe_key

from .conftest import claim_package, eligibility_package


def _adapter(handler, kind: str = "fhir-payer", **settings):
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    base = {"fhir-payer": {"base_url": "http://payer/fhir"},
            "clearinghouse-json": {"base_url": "http://chc", "api_key": "k"}}[kind]
    return create_adapter(kind, {**base, **settings}, http=http, control_numbers=InMemoryControlNumbers())


def test_builtin_kinds_are_registered():
    assert {"x12-directory", "x12-sftp", "fhir-payer", "clearinghouse-json"} <= set(adapter_kinds())


def test_registry_knows_what_each_kind_can_do_before_an_adapter_is_built(tmp_path):
    """The registry's capabilities and batch size are those of the adapter it builds."""
    settings = {"x12-directory": {"root": str(tmp_path), "batch_size": 7},
                "x12-sftp": {"host": "h", "username": "u", "host_key": "ssh-ed25519 AAAA", "batch_size": 3},
                "fhir-payer": {"base_url": "http://payer/fhir"},
                "clearinghouse-json": {"base_url": "http://chc", "api_key": "k"}}
    for kind, s in settings.items():
        adapter = create_adapter(kind, s, http=httpx.AsyncClient(), control_numbers=InMemoryControlNumbers())
        assert capabilities(kind, s) == adapter.capabilities, kind
        assert claim_batch_size(kind, s) == adapter.capabilities.batch_size, kind
    assert claim_batch_size("x12-directory", {"root": str(tmp_path)}) == 500
    assert claim_batch_size("carrier-pigeon", {}) == 1
    with pytest.raises(KeyError, match="carrier-pigeon"):
        capabilities("carrier-pigeon", {})


def test_unknown_kind_and_bad_settings_are_refused():
    http = httpx.AsyncClient()
    with pytest.raises(KeyError):
        create_adapter("carrier-pigeon", {}, http=http, control_numbers=InMemoryControlNumbers())
    with pytest.raises(ValueError):
        create_adapter("x12-directory", {}, http=http, control_numbers=InMemoryControlNumbers())
    with pytest.raises(ValueError, match="host_key"):
        create_adapter("x12-sftp", {"host": "h", "username": "u"}, http=http, control_numbers=InMemoryControlNumbers())
    with pytest.raises(ValueError):
        create_adapter("fhir-payer", {"base_url": "http://x", "auth": "client_secret"}, http=http,
                       control_numbers=InMemoryControlNumbers())


def test_register_replaces_a_kind_and_adapters_satisfy_the_protocol(tmp_path):
    made = []

    def factory(settings, *, http, control_numbers):
        from payer_adapters.x12_files import directory_factory
        made.append(settings)
        return directory_factory(settings, http=http, control_numbers=control_numbers)

    register_adapter("test-dir", factory)
    a = create_adapter("test-dir", {"root": str(tmp_path)}, http=httpx.AsyncClient(),
                       control_numbers=InMemoryControlNumbers())
    assert made and isinstance(a, PayerAdapter)


def test_safe_key_keeps_names_inside_the_mailbox():
    assert safe_key("../../etc/passwd") == "------etc-passwd"
    assert safe_key("0b7c-4d2e_X") == "0b7c-4d2e_X"
    with pytest.raises(ValueError):
        safe_key("///")


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("t"), httpx.ConnectTimeout("t"), httpx.ConnectError("refused"),
                                 httpx.RemoteProtocolError("peer closed connection"), httpx.ReadError("reset")])
async def test_transport_failures_are_transient(exc):
    def handler(request):
        raise exc
    a = _adapter(handler)
    with pytest.raises(TransientPayerError):
        await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="k1")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 409])
async def test_5xx_429_and_409_are_transient(status):
    a = _adapter(lambda request: httpx.Response(status, headers={"Retry-After": "3"}))
    with pytest.raises(TransientPayerError) as err:
        await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="k1")
    assert err.value.retry_after == 3.0


async def test_truncated_body_is_transient():
    def handler(request):
        return httpx.Response(200, content=b'{"resourceType": "Bundle", "entr', headers={"content-type": "application/json"})
    with pytest.raises(TransientPayerError):
        await _adapter(handler).submit_claims([claim_package("enc-brooks-1")], idempotency_key="k1")


async def test_4xx_with_operation_outcome_is_a_rejection_carrying_it():
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                                                         "diagnostics": "Claim.item[0].modifier missing",
                                                         "expression": ["Claim.item[0].modifier"]}]}
    a = _adapter(lambda request: httpx.Response(422, json=oo))
    with pytest.raises(PayerRejection) as err:
        await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="k1")
    assert err.value.outcome == oo and err.value.status == 422


async def test_chc_400_errors_become_an_operation_outcome_without_phi():
    body = {"errors": [{"code": "33", "description": "Input Errors: subscriber.memberId invalid",
                        "followupAction": "Please Correct and Resubmit"}]}
    a = _adapter(lambda request: httpx.Response(400, json=body), "clearinghouse-json")
    with pytest.raises(PayerRejection) as err:
        await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="k1")
    issue = err.value.outcome["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "33"
    assert "ACM987654321" not in str(err.value) and "Brooks" not in str(err.value)


async def test_eligibility_timeout_is_transient():
    def handler(request):
        raise httpx.ReadTimeout("slow payer")
    a = _adapter(handler, "clearinghouse-json")
    with pytest.raises(TransientPayerError):
        await a.check_eligibility(eligibility_package("pat-brooks", "cov-brooks"), timeout=0.5)
