"""x12-directory against the sandbox mailbox: files out, 999/277CA/835/271 back, exactly once."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from payer_adapters.errors import PayerRejection
from payer_adapters.registry import create_adapter
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import InMemoryControlNumbers, decode, validate

from .conftest import ENCOUNTERS, NOW, claim_package, eligibility_package


@pytest.fixture
def mailbox(tmp_path: Path) -> Mailbox:
    return Mailbox(tmp_path / "mb", Engine(load_config()))


@pytest.fixture
def adapter(mailbox: Mailbox):
    return create_adapter("x12-directory", {"root": str(mailbox.root)}, http=httpx.AsyncClient(),
                          control_numbers=InMemoryControlNumbers(start=41))


async def test_batch_round_trip_and_every_answer_decodes(adapter, mailbox):
    pkgs = [claim_package(e) for e in ENCOUNTERS]
    receipt = await adapter.submit_claims(pkgs, idempotency_key="batch-0001")
    assert receipt.file_name == "837P_batch-0001.x12" and not receipt.replayed
    assert receipt.control_numbers["ISA"] == "000000041" and receipt.control_numbers["ST"]
    assert sorted(receipt.patient_control_numbers) == sorted(p.patient_control_number for p in pkgs)
    assert validate((mailbox.root / "inbox" / receipt.file_name).read_bytes()) == []

    written = mailbox.process(NOW)
    assert written == ["999_batch-0001.x12", "277CA_batch-0001.x12", "835_batch-0001.x12"]
    messages = await adapter.fetch_responses()
    assert [m.kind for m in messages] == ["277CA", "835", "999"]
    for m in messages:
        result = decode(m.data)
        assert result.transactions and result.warnings == []
        assert validate(m.data, use_pyx12=True) == []
        assert result.to_fhir()["entry"]
    ack = decode(next(m for m in messages if m.kind == "999").data).acknowledgments[0]
    assert ack.group_control_number == receipt.control_numbers["GS"] and ack.group_status == "A"
    acks = decode(next(m for m in messages if m.kind == "277CA").data).claim_acknowledgments[0]
    assert {c.patient_control_number for c in acks.claims} == set(receipt.patient_control_numbers)
    for m in messages:
        await adapter.acknowledge(m)
        await adapter.acknowledge(m)  # idempotent
    assert await adapter.fetch_responses() == []
    assert sorted(p.name for p in (mailbox.root / "archive").iterdir()) == sorted(Path(m.name).name for m in messages)


async def test_same_key_twice_uploads_once_and_crash_readback_finds_the_file(adapter, mailbox):
    pkgs = [claim_package("enc-brooks-1")]
    first = await adapter.submit_claims(pkgs, idempotency_key="k-crash")
    # The worker dies here, before recording the receipt; on restart it reads back.
    found = await adapter.find_submission("k-crash")
    assert found is not None and found.replayed and found.control_numbers == first.control_numbers
    again = await adapter.submit_claims(pkgs, idempotency_key="k-crash")
    assert again.replayed and again.control_numbers == first.control_numbers
    assert len(list((mailbox.root / "inbox").iterdir())) == 1
    mailbox.process(NOW)
    # Picked up by the payer: still found (processed/), still not sent again.
    assert (await adapter.find_submission("k-crash")).file_name == first.file_name
    await adapter.submit_claims(pkgs, idempotency_key="k-crash")
    assert mailbox.process(NOW) == []
    assert mailbox.engine.ledger.summary()["claim_count"] == 1
    assert await adapter.find_submission("never-sent") is None


async def test_no_partial_file_is_ever_visible(adapter, mailbox):
    await adapter.submit_claims([claim_package("enc-kim-1")], idempotency_key="atomic")
    names = [p.name for p in (mailbox.root / "inbox").iterdir()]
    assert names == ["837P_atomic.x12"]


async def test_unencodable_claim_is_a_rejection_and_nothing_is_uploaded(adapter, mailbox):
    def edit(claim, res):
        claim["identifier"][0]["value"] = "bad pcn with spaces and way too long"
    with pytest.raises(PayerRejection):
        await adapter.submit_claims([claim_package("enc-brooks-1", edit=edit)], idempotency_key="bad")
    assert list((mailbox.root / "inbox").iterdir()) == []


async def test_270_is_queued_and_271_comes_back(adapter, mailbox):
    result = await adapter.check_eligibility(eligibility_package("pat-brooks", "cov-brooks", trace="TRC0001"),
                                             timeout=1)
    assert result.queued and result.response is None and result.reference == "270_TRC0001.x12"
    assert adapter.capabilities.realtime_eligibility is False
    mailbox.process(NOW)
    msgs = {m.kind: m for m in await adapter.fetch_responses()}
    assert set(msgs) == {"999", "271"}
    elig = decode(msgs["271"].data).eligibility[0]
    assert elig.active and elig.trace_number == "TRC0001"
    ot = next(s for s in elig.summaries() if s.service_type == "AD" and s.in_network)
    assert (ot.copay, ot.visits_total, ot.visits_remaining, ot.auth_required) == (30, 30, 26, False)
    assert validate(msgs["271"].data, use_pyx12=True) == []


async def test_corrupt_inbound_file_is_quarantined_and_the_rest_processed(adapter, mailbox):
    (mailbox.root / "inbox" / "837P_garbage.x12").write_bytes(b"this is not X12 at all")
    await adapter.submit_claims([claim_package("enc-brooks-1")], idempotency_key="good")
    written = mailbox.process(NOW)
    assert "835_good.x12" in written and not any("garbage" in w for w in written)
    assert (mailbox.root / "quarantine" / "837P_garbage.x12").exists()


async def test_syntax_error_gets_a_999_reject_and_nothing_else(adapter, mailbox):
    await adapter.submit_claims([claim_package("enc-brooks-1")], idempotency_key="broken")
    path = mailbox.root / "inbox" / "837P_broken.x12"
    text = path.read_text()
    path.write_text(text.replace("SV1*HC:", "SV1*ZZ:", 1))
    written = mailbox.process(NOW)
    assert written == ["999_broken.x12"]
    ack = decode((mailbox.root / "outbox" / "999_broken.x12").read_bytes()).acknowledgments[0]
    assert ack.group_status == "R" and ack.sets[0].status == "R"
    assert mailbox.engine.ledger.summary()["claim_count"] == 0


async def test_data_file_syntax_edit_rejects_the_set_in_the_999(adapter, mailbox):
    """``syntax_edits`` in sandbox.json: a listed subscriber id makes a well-formed 837P's set fail
    the 999 at 2010BA NM109 (IK403 7), deterministically; other member ids are untouched."""
    await adapter.submit_claims([claim_package("enc-alvarez-1", member="MCR999REJECT")], idempotency_key="refused")
    await adapter.submit_claims([claim_package("enc-alvarez-1")], idempotency_key="fine")
    assert validate((mailbox.root / "inbox" / "837P_refused.x12").read_bytes()) == []  # nothing wrong with the file
    written = mailbox.process(NOW)
    assert written == ["999_fine.x12", "277CA_fine.x12", "835_fine.x12", "999_refused.x12"]
    data = (mailbox.root / "outbox" / "999_refused.x12").read_bytes()
    assert validate(data, use_pyx12=True) == []
    ack = decode(data).acknowledgments[0]
    assert ack.group_status == "R" and ack.counts == (1, 1, 0)
    [s] = ack.sets
    [note] = s.segments
    assert (s.status, note.segment_id, note.loop_id, note.code) == ("R", "NM1", "2010", "8")  # IK303 is 4 long at most
    assert [(e.position, e.code) for e in note.elements] == [(9, "7")]
    assert mailbox.engine.ledger.summary()["by_member"] == {"1EG4TE5MK73": 1}
