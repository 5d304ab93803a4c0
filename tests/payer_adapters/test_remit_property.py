"""Property: whatever the sandbox adjudicates, the 835 it writes balances and decodes cleanly."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from payer_adapters.sandbox import Engine, load_config
from payer_adapters.sandbox.model import Claim, Line
from payer_adapters.sandbox.x12_out import Counter, InboundEnvelope, ReplyWriter, write_277ca, write_835
from payer_adapters.x12 import decode

CONFIG = load_config()
CODES = sorted(CONFIG.data["base_fee_schedule"])
MEMBERS = sorted(CONFIG.data["members"])

line = st.builds(
    lambda code, mods, cents, units: Line(code, mods, Decimal(cents) / 100, Decimal(units), "20261110"),
    st.sampled_from(CODES),
    st.lists(st.sampled_from(["GO", "GP", "GN", "KX", "CQ", "CO", "59"]), min_size=1, max_size=3, unique=True),
    st.integers(min_value=1, max_value=90000), st.integers(min_value=1, max_value=8))


@settings(max_examples=60, deadline=None)
@given(member=st.sampled_from(MEMBERS), lines=st.lists(line, min_size=1, max_size=6), auth=st.booleans())
def test_any_adjudication_writes_a_balanced_835(member, lines, auth):
    engine = Engine(CONFIG)
    payer = CONFIG.data["members"][member]["payer"]
    for n, ln in enumerate(lines, start=1):
        ln.sequence, ln.control = n, f"PCNPROP-{n}"
    claim = Claim(pcn="PCNPROP", member_id=member, payer_id=payer, billing_npi="1345678902",
                  billing_name="RIVERSIDE", patient_last="DOE", patient_first="JO",
                  prior_auth="A1" if auth else "", total=sum((ln.charge for ln in lines), Decimal(0)), lines=lines)
    result = engine.process(claim, received=date(2026, 11, 23), salt="prop")
    reply = ReplyWriter(InboundEnvelope(sender_id="THERABRIDGE", receiver_id="TBSANDBOX", isa_control="1",
                                        gs_sender="THERABRIDGE", gs_receiver="TBSANDBOX", gs_control="1",
                                        gs_version="005010X222A1", gs_functional_id="HC",
                                        sets=[("837", "0001", "005010X222A1")]),
                        datetime(2026, 11, 23, tzinfo=timezone.utc), Counter())
    ack = decode(write_277ca(reply, [result], batch_id="B1", received=reply.now, config=CONFIG.data))
    assert (ack.claim_acknowledgments[0].claims[0].outcome == "error") == result.rejected
    if result.rejected:
        return
    remit = decode(write_835(reply, [result], trace_seed="P", config=CONFIG.data))
    assert remit.warnings == []
    paid = remit.remittances[0].claims[0]
    assert paid.paid == result.paid and 0 <= paid.paid <= claim.total
    for svc in paid.services:
        assert svc.charge - sum(a.amount for a in svc.adjustments) == svc.paid
