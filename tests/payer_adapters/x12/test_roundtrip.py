"""837P → sandbox 835 (built from the 837P) → EOBs tie back to the right claims and lines."""
from __future__ import annotations

from decimal import Decimal

from payer_adapters.x12 import decode, encode_837p, iter_835_claims, match_lines, validate
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance
from fhir_mappings.vocabulary import LINE_CONTROL_NUMBER as LINE_CONTROL

from . import builders as B
from .conftest import NOW
from .fhir_check import adjudication, assert_valid_bundle, resources
from .pyx12_check import assert_pyx12_ok
from .sandbox835 import build_835


def _claims(bundle):
    return {c["identifier"][0]["value"]: c for c in (e["resource"] for e in bundle["entry"])
            if c["resourceType"] == "Claim"}


def _submit(bundle, partner, numbers):
    x12 = encode_837p(bundle, partner, numbers, now=NOW)
    return [c for t in decode(x12).transactions for c in t.claims]


def test_eob_lines_tie_back_by_line_control_number(partner, numbers):
    bundle = B.medicare_ot_bundle()
    claims = _claims(bundle)
    x835 = build_835(_submit(bundle, partner, numbers))
    assert_pyx12_ok(x835)
    assert validate(x835, use_pyx12=False) == []
    result = decode(x835)
    fhir = result.to_fhir(claims)
    assert_valid_bundle(fhir)
    eob = resources(fhir, "ExplanationOfBenefit")[0]
    assert eob["claim"]["reference"] == "Claim/claim1"
    assert eob["patient"] == {"reference": "Patient/pat1"}
    sent = {LINE(i): i["sequence"] for i in claims["PCN20250114A"]["item"]}
    for item in eob["item"]:
        assert item["sequence"] == sent[LINE(item)]
    # sandbox arithmetic: 80 % allowed, 20 % coinsurance
    first = eob["item"][0]
    assert adjudication(first["adjudication"], "eligible")[0]["amount"]["value"] == 120.0
    assert adjudication(first["adjudication"], "benefit")[0]["amount"]["value"] == 96.0


def LINE(item):
    return next(e["valueString"] for e in item["extension"] if e["url"] == LINE_CONTROL)


def test_payer_drops_a_modifier_line_still_matches(partner, numbers):
    bundle = B.medicare_ot_bundle()
    claims = _claims(bundle)
    x835 = build_835(_submit(bundle, partner, numbers), drop_modifiers=True)
    rem = decode(x835).remittances[0]
    payment = rem.claims[0]
    assert [s.modifiers for s in payment.services] == [[], [], []]
    assert payment.services[1].original_code == "97110"
    # reorder the claim's items: matching must follow REF*6R, not position
    claims["PCN20250114A"]["item"].reverse()
    assert match_lines(payment, claims["PCN20250114A"]) == [1, 2, 3]


def test_fallback_to_code_and_date_without_ref_6r(partner, numbers):
    bundle = B.commercial_bundle()
    claims = _claims(bundle)
    rem = decode(build_835(_submit(bundle, partner, numbers), drop_line_control=True)).remittances[0]
    assert all(s.line_control_number is None for s in rem.claims[0].services)
    assert match_lines(rem.claims[0], claims["PCN20250201C"]) == [1, 2]


def test_denied_claim_and_interest(partner, numbers):
    bundle = B.medicare_ot_bundle()
    subs = _submit(bundle, partner, numbers) + _submit(B.workers_comp_bundle(), partner, numbers)
    x835 = build_835(subs, deny={"PCN20250303C"}, interest=Decimal("1.25"))
    assert_pyx12_ok(x835)
    result = decode(x835)
    rem = result.remittances[0]
    assert rem.balance_errors == []
    assert rem.claims[1].status == "4" and rem.claims[1].paid == 0
    assert rem.total_paid == rem.claims[0].paid + Decimal("1.25")
    fhir = result.to_fhir()
    assert_valid_bundle(fhir)
    pr = resources(fhir, "PaymentReconciliation")[0]
    assert pr["detail"][-1]["type"]["coding"][0]["code"] == "adjustment" and pr["detail"][-1]["amount"]["value"] == 1.25


def test_imbalance_is_reported_not_hidden(partner, numbers):
    x835 = build_835(_submit(B.medicare_ot_bundle(), partner, numbers), break_line_balance=True)
    result = decode(x835)
    rem = result.remittances[0]
    kinds = [(e.segment_id, e.loop_id) for e in rem.balance_errors]
    assert kinds.count(("SVC", "2110")) == 3 and ("CLP", "2100") in kinds
    assert result.warnings == rem.balance_errors
    fhir = result.to_fhir()
    assert_valid_bundle(fhir)
    assert resources(fhir, "ExplanationOfBenefit")[0]["disposition"].startswith("Does not balance")
    assert resources(fhir, "PaymentReconciliation")[0]["outcome"] == "error"
    oo = resources(fhir, "OperationOutcome")[0]
    assert oo["issue"][0]["code"] == "business-rule"
    assert any(e.segment_id == "SVC" for e in validate(x835, use_pyx12=False))


def test_payment_total_imbalance(examples):
    text = (examples / "835_ot_remittance.x12").read_text().replace("BPR*I*122.77", "BPR*I*122.78")
    rem = decode(text).remittances[0]
    assert [e.segment_id for e in rem.balance_errors] == ["BPR"]
    assert "122.78" in rem.balance_errors[0].message


def test_second_delivery_has_the_same_payment_identity_and_ids(partner, numbers):
    subs = _submit(B.medicare_ot_bundle(), partner, numbers)
    first = decode(build_835(subs, trace="EFT777"))
    again = decode(build_835(subs, trace="EFT777", isa_control=402))
    assert first.remittances[0].payment_identity == again.remittances[0].payment_identity == ("EFT777", "1512345678")
    urls = [[e["fullUrl"] for e in r.to_fhir()["entry"]] for r in (first, again)]
    assert urls[0] == urls[1]
    other = decode(build_835(subs, trace="EFT778"))
    assert other.remittances[0].payment_identity != first.remittances[0].payment_identity


def test_streaming_yields_claims_then_the_remittance(partner, numbers):
    bundle = B.many_claims_bundle(25)
    x835 = build_835(_submit(bundle, partner, numbers), newline=False)
    items = list(iter_835_claims(x835.encode()))
    claims = [i for i in items if isinstance(i, ClaimPayment)]
    assert len(claims) == 25 and isinstance(items[-1], Remittance)
    assert items[-1].claims == [] and items[-1].claim_count == 25
    assert claims[0].patient_control_number == "P000000000"


def _synthetic(n: int) -> str:
    from payer_adapters.x12.decode_837p import ClaimSubmission, LineSubmission

    subs = [ClaimSubmission(f"P{k:09d}", Decimal(150), "11", "1", "M1", "00952", "1234567893",
                            lines=[LineSubmission("97110", ["GO"], Decimal(50), Decimal(1), "2025-01-14",
                                                  f"P{k:09d}{j:02d}") for j in range(3)])
            for k in range(n)]
    return build_835(subs, newline=False)


def test_streaming_memory_is_flat():
    import io
    import tracemalloc

    peaks = []
    for n in (2000, 8000):
        data = io.BytesIO(_synthetic(n).encode())
        tracemalloc.start()
        count = sum(1 for item in iter_835_claims(data) if isinstance(item, ClaimPayment))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == n
    # 4x the claims (0.8 MB → 3.2 MB): the peak stays put (reader chunk + one claim at a time)
    assert peaks[1] < 1.3 * peaks[0], peaks
