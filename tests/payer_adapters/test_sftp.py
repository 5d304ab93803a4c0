"""x12-sftp against a real OpenSSH sshd on loopback (throwaway host and user keys in tmp_path)."""
from __future__ import annotations

import os

import httpx
import pytest

from payer_adapters.errors import TransientPayerError
from payer_adapters.registry import create_adapter
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import InMemoryControlNumbers, decode

from .conftest import NOW, claim_package, eligibility_package

if not os.path.exists("/usr/sbin/sshd"):
    pytest.skip("OpenSSH server (/usr/sbin/sshd) is not installed", allow_module_level=True)

from payer_adapters.sandbox.sshd import free_port  # noqa: E402

# ``sshd``: the shared fixture in tests/conftest.py (a real sshd per module).


def settings(server, **extra):
    return server.adapter_settings(**extra)


async def test_claims_and_eligibility_over_sftp(sshd):
    adapter = create_adapter("x12-sftp", settings(sshd), http=httpx.AsyncClient(),
                             control_numbers=InMemoryControlNumbers())
    payer = Mailbox(sshd.mailbox, Engine(load_config()), use_pyx12=False)
    try:
        pkgs = [claim_package("enc-alvarez-1"), claim_package("enc-brooks-1")]
        receipt = await adapter.submit_claims(pkgs, idempotency_key="sftp-1")
        assert (sshd.mailbox / "inbox" / "837P_sftp-1.x12").exists()
        assert (await adapter.submit_claims(pkgs, idempotency_key="sftp-1")).replayed
        await adapter.check_eligibility(eligibility_package("pat-alvarez", "cov-alvarez", trace="SFTPTRC1"), timeout=5)
        payer.process(NOW)
        found = await adapter.find_submission("sftp-1")
        assert found is not None and found.control_numbers == receipt.control_numbers
        msgs = await adapter.fetch_responses()
        assert sorted(m.kind for m in msgs) == ["271", "277CA", "835", "999", "999"]
        for m in msgs:
            assert decode(m.data).transactions
            await adapter.acknowledge(m)
        assert await adapter.fetch_responses() == []
        assert len(list((sshd.mailbox / "archive").iterdir())) == 5
        assert payer.engine.ledger.summary()["claim_count"] == 2
    finally:
        await adapter.close()


async def test_wrong_host_key_and_no_server_are_transient(sshd, tmp_path):
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZ5dWVnq3Fz8Mbm1r6O3tT7pXH3q0I2fVQ4s2Qm8n0R"
    for bad in (settings(sshd, host_key=other), settings(sshd, port=free_port(), connect_timeout=2)):
        adapter = create_adapter("x12-sftp", bad, http=httpx.AsyncClient(), control_numbers=InMemoryControlNumbers())
        with pytest.raises(TransientPayerError) as err:
            await adapter.find_submission("any")
        assert "BEGIN" not in str(err.value)


async def test_claim_status_over_sftp(sshd):
    """A 276 goes up the SFTP mailbox like an 837P; the 277 comes back down (a claim never sent
    there: not on file, A4:35)."""
    from payer_adapters.x12 import validate

    adapter = create_adapter("x12-sftp", settings(sshd), http=httpx.AsyncClient(),
                             control_numbers=InMemoryControlNumbers())
    payer = Mailbox(sshd.mailbox, Engine(load_config()), use_pyx12=False)

    def sent(claim, res):  # type: ignore[no-untyped-def]
        claim.setdefault("extension", []).append(
            {"url": "https://therabridge.dev/fhir/StructureDefinition/claim-lifecycle", "valueCode": "submitted"})

    try:
        result = await adapter.claim_status(claim_package("enc-kim-1", edit=sent), key="sftp-status-1")
        assert result.queued and (sshd.mailbox / "inbox" / "276_sftp-status-1.x12").exists()
        assert validate((sshd.mailbox / "inbox" / "276_sftp-status-1.x12").read_bytes()) == []
        payer.process(NOW)
        msgs = {m.kind: m for m in await adapter.fetch_responses()}
        assert set(msgs) == {"999", "277"}
        (status,) = decode(msgs["277"].data).claim_statuses
        assert (status.current.category, status.lifecycle) == ("A4", "not-found")
    finally:
        await adapter.close()
