"""The sandbox as a real process (``therabridge sandbox-payer`` via its Typer command) on
loopback: a mailbox flow and fault injection — 500s, timeouts and dropped connections are
retried with the same key and the payer still sees each claim exactly once."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from payer_adapters.errors import PayerRejection, TransientPayerError
from payer_adapters.registry import create_adapter
from payer_adapters.sandbox.sshd import free_port
from payer_adapters.x12 import InMemoryControlNumbers, decode

from .conftest import claim_package, eligibility_package

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ("import typer; from app.cli.sandbox import register; app = typer.Typer(); "
          "app.callback()(lambda: None); register(app); app()")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    mailbox = tmp_path_factory.mktemp("live") / "mailbox"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "sandbox-payer", "--port", str(port),
                             "--mailbox", str(mailbox), "--poll", "0.1"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/sandbox/ledger", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"sandbox did not start: {proc.stdout.read().decode()[-2000:]}")
    yield base, mailbox
    proc.terminate()
    proc.wait(timeout=10)


async def with_retries(call, attempts: int = 5):
    """What the outbox worker does: retry transient failures with the same key."""
    errors = []
    for _ in range(attempts):
        try:
            return await call(), errors
        except TransientPayerError as exc:
            errors.append(exc)
    raise AssertionError(f"still failing after {attempts} attempts: {errors}")


async def fault(http, base, path, mode, count=1, seconds=0.0):
    r = await http.post(f"{base}/sandbox/faults", json={"path": path, "mode": mode, "count": count, "seconds": seconds})
    assert r.status_code == 200


async def count_for(http, base, pcn):
    return (await http.get(f"{base}/sandbox/ledger")).json()["by_patient_control_number"].get(pcn, 0)


async def test_mailbox_flow_through_the_running_sandbox(live):
    base, mailbox = live
    async with httpx.AsyncClient() as http:
        a = create_adapter("x12-directory", {"root": str(mailbox)}, http=http, control_numbers=InMemoryControlNumbers())
        await a.submit_claims([claim_package("enc-alvarez-2")], idempotency_key="live-file-1")
        deadline = time.monotonic() + 15
        kinds: set[str] = set()
        while time.monotonic() < deadline and kinds != {"999", "277CA", "835"}:
            time.sleep(0.1)
            kinds = {m.kind for m in await a.fetch_responses()}
        assert kinds == {"999", "277CA", "835"}
        for m in await a.fetch_responses():
            assert decode(m.data).transactions


async def test_500s_are_retried_and_bill_once(live):
    base, _ = live
    async with httpx.AsyncClient() as http:
        a = create_adapter("clearinghouse-json", {"base_url": base, "api_key": "test_sandbox_key"}, http=http,
                           control_numbers=InMemoryControlNumbers())
        pkg = claim_package("enc-brooks-1", pcn="LIVE500A")
        await fault(http, base, "/medicalnetwork/professionalclaims/v3/submission", "500", count=2)
        receipt, errors = await with_retries(lambda: a.submit_claims([pkg], idempotency_key="live-500"))
        assert len(errors) == 2 and receipt.transaction_id
        assert await count_for(http, base, "LIVE500A") == 1


async def test_connection_dropped_after_the_payer_took_the_claim_bills_once(live):
    base, _ = live
    async with httpx.AsyncClient() as http:
        a = create_adapter("clearinghouse-json", {"base_url": base, "api_key": "test_sandbox_key"}, http=http,
                           control_numbers=InMemoryControlNumbers())
        pkg = claim_package("enc-brooks-1", pcn="LIVEDROP1")
        await fault(http, base, "/medicalnetwork/professionalclaims/v3/submission", "drop-after")
        receipt, errors = await with_retries(lambda: a.submit_claims([pkg], idempotency_key="live-drop"))
        assert len(errors) == 1 and "transport failure" in str(errors[0]) and receipt.replayed
        assert await count_for(http, base, "LIVEDROP1") == 1


async def test_fhir_connection_drop_and_timeout_are_transient_and_bill_once(live):
    base, _ = live
    async with httpx.AsyncClient() as http:
        a = create_adapter("fhir-payer", {"base_url": f"{base}/fhir", "auth": "client_secret",
                                          "token_url": f"{base}/oauth/token", "client_id": "demo-client",
                                          "client_secret": "demo-secret", "timeout": 0.5},
                           http=http, control_numbers=InMemoryControlNumbers())
        pkg = claim_package("enc-alvarez-1", pcn="LIVEFHIR1")
        await fault(http, base, "/fhir/Claim/$submit", "drop")
        await fault(http, base, "/fhir/CoverageEligibilityRequest/$submit", "sleep", seconds=1.5)
        with pytest.raises(TransientPayerError):
            await a.check_eligibility(eligibility_package("pat-alvarez", "cov-alvarez"), timeout=0.3)
        receipt, errors = await with_retries(lambda: a.submit_claims([pkg], idempotency_key="live-fhir"))
        assert len(errors) == 1 and "transport failure" in str(errors[0])
        assert receipt.synchronous_response["outcome"] == "complete"
        await fault(http, base, "/fhir/Claim/$submit", "drop-after")
        replay, errors = await with_retries(lambda: a.submit_claims([pkg], idempotency_key="live-fhir"))
        assert replay.synchronous_response["id"] == receipt.synchronous_response["id"]
        assert await count_for(http, base, "LIVEFHIR1") == 1


async def test_business_rejection_is_not_retried(live):
    base, _ = live
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{base}/medicalnetwork/professionalclaims/v3/submission", json={"controlNumber": "1"},
                            headers={"Authorization": "Key test_sandbox_key"})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "33"
        a = create_adapter("clearinghouse-json", {"base_url": base, "api_key": "test_sandbox_key"}, http=http,
                           control_numbers=InMemoryControlNumbers())
        pkg = claim_package("enc-brooks-1", pcn="LIVEREJ1")
        await a.submit_claims([pkg], idempotency_key="live-rej")
        with pytest.raises(PayerRejection):
            await a.submit_claims([claim_package("enc-kim-1")], idempotency_key="live-rej")


async def test_the_same_835_can_be_delivered_twice_byte_for_byte(tmp_path):
    from payer_adapters.sandbox import create_sandbox_app, load_config

    from .conftest import NOW
    app = create_sandbox_app(load_config(mailbox=tmp_path / "mb", poll_interval=0), now=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as http:
        a = create_adapter("x12-directory", {"root": str(tmp_path / "mb")}, http=http,
                           control_numbers=InMemoryControlNumbers())
        await a.submit_claims([claim_package("enc-brooks-1")], idempotency_key="twice")
        assert (await http.post("/sandbox/mailbox/process")).json()["written"][-1] == "835_twice.x12"
        answers = await a.fetch_responses()
        for m in answers:
            await a.acknowledge(m)
        first = next(m for m in answers if m.kind == "835")
        r = await http.post("/sandbox/mailbox/redeliver", params={"name": "835_twice.x12"})
        assert r.json()["written"] == "835_twice.again2.x12"
        again = await a.fetch_responses()
        assert [m.data for m in again] == [first.data] and again[0].name != first.name
