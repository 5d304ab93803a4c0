"""A sandbox payer for tests: adjudicates a decoded 837P and writes the 835 it would send back.

Rules: allowed = 80 % of the line charge, CO-45 writes off the rest, PR-2 coinsurance = 20 % of
allowed, paid = allowed − coinsurance. Options let a test drop modifiers (SVC01 loses them, SVC06
carries the original), drop REF*6R, deny a claim, add PLB interest or break the balance.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable

from payer_adapters.x12.decode_837p import ClaimSubmission
from payer_adapters.x12.resources import fmt_amount
from payer_adapters.x12.segments import Separators, SegmentWriter

C2 = Decimal("0.01")


def _r(x: Decimal) -> Decimal:
    return x.quantize(C2, rounding=ROUND_HALF_UP)


def build_835(claims: Iterable[ClaimSubmission], *, trace: str = "EFT0001", drop_modifiers: bool = False,
              drop_line_control: bool = False, deny: set[str] = frozenset(), interest: Decimal | None = None,
              break_line_balance: bool = False, isa_control: int = 401, payer_id: str = "1512345678",
              newline: bool = True, seps: Separators = Separators()) -> str:
    w = SegmentWriter(seps, newline=newline)
    body = SegmentWriter(seps, newline=newline)
    total_paid = Decimal(0)
    body.seg("N1", "PR", "SANDBOX PAYER")
    body.seg("N3", "PO BOX 1000")
    body.seg("N4", "CHICAGO", "IL", "606011000")
    body.seg("PER", "BL", "EDI SUPPORT", "TE", "8005550199")
    npi = ""
    claims = list(claims)
    if claims:
        npi = claims[0].billing_npi
    body.seg("N1", "PE", "BRIGHT HANDS OCCUPATIONAL THERAPY", "XX", npi or "1234567893")
    body.seg("REF", "TJ", "371234567")
    body.seg("LX", "1")
    for n, c in enumerate(claims):
        denied = c.patient_control_number in deny
        lines = []
        claim_paid = claim_pr = Decimal(0)
        for line in c.lines:
            if denied:
                lines.append((line, Decimal(0), [("CO", "50", line.charge)], None))
                continue
            allowed = _r(line.charge * Decimal("0.8"))
            coins = _r(allowed * Decimal("0.2"))
            paid = allowed - coins
            if break_line_balance:
                paid += Decimal("1.00")
            claim_paid += paid
            claim_pr += coins
            lines.append((line, paid, [("CO", "45", line.charge - allowed), ("PR", "2", coins)], allowed))
        body.seg("CLP", c.patient_control_number, "4" if denied else "1", fmt_amount(c.total), fmt_amount(claim_paid),
                 fmt_amount(claim_pr), "MB", f"ICN{n:011d}", "11", "1")
        body.seg("NM1", "QC", "1", "DOE", "JANE", "", "", "", "MI", c.member_id or "X")
        for line, paid, adjustments, allowed in lines:
            mods = [] if drop_modifiers else line.modifiers
            body.seg("SVC", ("HC", line.code, *mods), fmt_amount(line.charge), fmt_amount(paid), "",
                     fmt_amount(line.units), ("HC", line.code, *line.modifiers) if drop_modifiers and line.modifiers else "")
            if line.service_date:
                body.seg("DTM", "472", line.service_date.replace("-", ""))
            for group, reason, amt in adjustments:
                body.seg("CAS", group, reason, fmt_amount(amt))
            if line.line_control_number and not drop_line_control:
                body.seg("REF", "6R", line.line_control_number)
            if allowed is not None:
                body.seg("AMT", "B6", fmt_amount(allowed))
            if denied:
                body.seg("LQ", "HE", "N115")
        total_paid += claim_paid
    if interest is not None:
        body.seg("PLB", npi or "1234567893", "20251231", ("L6", claims[0].patient_control_number if claims else ""),
                 fmt_amount(-interest))
        total_paid += interest
    st = SegmentWriter(seps, newline=newline)
    st.seg("ST", "835", "0001")
    st.seg("BPR", "I", fmt_amount(total_paid), "C", "ACH", "CCP", "01", "999999992", "DA", "123456", payer_id, "",
           "01", "999988880", "DA", "98765", "20250210")
    st.seg("TRN", "1", trace, payer_id)
    st.seg("DTM", "405", "20250207")
    count = st.count + body.count + 1
    e = seps.element
    isa = e.join(["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "TBSANDBOX".ljust(15), "ZZ", "THERABRIDGE".ljust(15),
                  "250207", "0500", seps.repetition, "00501", f"{isa_control:09d}", "0", "T", seps.component])
    w.raw(isa)
    w.seg("GS", "HP", "TBSANDBOX", "THERABRIDGE", "20250207", "0500", isa_control, "X", "005010X221A1")
    tail = SegmentWriter(seps, newline=newline)
    tail.seg("SE", count, "0001")
    tail.seg("GE", 1, isa_control)
    tail.seg("IEA", 1, f"{isa_control:09d}")
    return w.text() + st.text() + body.text() + tail.text()
