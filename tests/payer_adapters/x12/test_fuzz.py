"""Property: whatever damage a file has, decoding ends in a result or an X12Error — never another
exception — and the sandbox 835 for any claims balances."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from payer_adapters.x12 import X12Error, decode, validate
from payer_adapters.x12.decode_837p import ClaimSubmission, LineSubmission

from .conftest import EXAMPLES
from .sandbox835 import build_835

NAMES = ["835_ot_remittance.x12", "277ca_ot_claim_ack.x12", "271_ot_eligibility_response.x12",
         "999_reject_837p.x12", "837p_ot_workers_comp.x12"]
TEXTS = {n: (EXAMPLES / n).read_text() for n in NAMES} if Path(EXAMPLES).exists() else {}

edit = st.tuples(st.sampled_from(["delete", "insert", "replace", "truncate"]),
                 st.integers(min_value=0, max_value=10_000), st.sampled_from(list("*:^~\nA9 -.")))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(NAMES), edits=st.lists(edit, min_size=1, max_size=4))
def test_damaged_files_fail_cleanly(name, edits):
    if not TEXTS:
        return
    text = TEXTS[name]
    for op, pos, ch in edits:
        pos %= max(len(text), 1)
        if op == "delete":
            text = text[:pos] + text[pos + 1:]
        elif op == "insert":
            text = text[:pos] + ch + text[pos:]
        elif op == "replace":
            text = text[:pos] + ch + text[pos + 1:]
        else:
            text = text[:pos]
    try:
        decode(text).to_fhir()
    except X12Error as err:
        assert err.message
    errors = validate(text, use_pyx12=False)
    assert all(isinstance(e, X12Error) for e in errors)


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)


@settings(max_examples=50, deadline=None)
@given(claims=st.lists(st.lists(st.tuples(amounts, st.integers(min_value=1, max_value=6)), min_size=1, max_size=5),
                       min_size=1, max_size=8),
       interest=st.one_of(st.none(), amounts))
def test_sandbox_remittance_always_balances(claims, interest):
    subs = []
    for k, lines in enumerate(claims):
        items = [LineSubmission("97110", ["GO"], charge, Decimal(units), "2025-01-14", f"C{k}L{j}")
                 for j, (charge, units) in enumerate(lines)]
        subs.append(ClaimSubmission(f"C{k}", sum((c for c, _ in lines), Decimal(0)), "11", "1", "M", "P", "1234567893",
                                    lines=items))
    rem = decode(build_835(subs, interest=interest)).remittances[0]
    assert rem.balance_errors == []
    assert [c.patient_control_number for c in rem.claims] == [s.patient_control_number for s in subs]
    assert [[s.line_control_number for s in c.services] for c in rem.claims] == [
        [ln.line_control_number for ln in s.lines] for s in subs]
    assert sum(c.paid for c in rem.claims) + (interest or 0) == rem.total_paid
