"""835 005010X221A1 → typed remittance records (``fhir_835`` maps them to FHIR).

Loop tree read here::

    ST
    Header  BPR TRN CUR REF DTM
    1000A   N1*PR N2 N3 N4 REF PER           payer
    1000B   N1*PE N2 N3 N4 REF RDM           payee
    2000    LX TS3 TS2                       header number (grouping only)
      2100  CLP CAS NM1 MIA MOA REF DTM PER AMT QTY       one claim (NM1*TT: the crossover payer)
        2110 SVC DTM CAS REF AMT QTY LQ                   one service line
    Summary PLB
    SE

Claims stream out one by one (:meth:`Decoder835.feed` returns a finished :class:`ClaimPayment`
when the next claim, header or PLB starts), so a 100 MB file never sits in memory.
Balancing is checked and kept in ``balance_errors`` — never corrected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import BalanceError, DataElementError, StructureError
from payer_adapters.x12.values import amount, d8, el

_Z = Decimal(0)


@dataclass(slots=True)
class Adjustment:
    group: str  # CAS01
    reason: str  # CARC
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(slots=True)
class ServicePayment:
    """Loop 2110: one SVC."""

    qualifier: str
    code: str
    modifiers: list[str]
    charge: Decimal
    paid: Decimal
    units: Decimal | None
    original_code: str | None = None
    service_date: str | None = None
    service_end: str | None = None
    line_control_number: str | None = None  # REF*6R
    allowed: Decimal | None = None  # AMT*B6
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)  # LQ*HE
    position: int = 0


@dataclass(slots=True)
class ClaimPayment:
    """Loop 2100: one CLP with its lines."""

    patient_control_number: str  # CLP01 = our CLM01
    status: str  # CLP02
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal
    filing_indicator: str
    payer_claim_control_number: str  # CLP07
    facility_code: str
    frequency: str
    adjustments: list[Adjustment] = field(default_factory=list)
    services: list[ServicePayment] = field(default_factory=list)
    patient_name: tuple[str, str] | None = None  # NM1*QC (family, given) — PHI, never logged
    member_id: str | None = None
    rendering_npi: str | None = None
    crossover_payer: tuple[str, str] | None = None  # NM1*TT (name, NM109): the payer it was forwarded to
    received_date: str | None = None  # DTM*050
    period: tuple[str | None, str | None] = (None, None)  # DTM*232/233
    remarks: list[str] = field(default_factory=list)  # MOA/MIA remark codes
    position: int = 0
    balance_errors: list[BalanceError] = field(default_factory=list)

    def adjustment_total(self, group: str | None = None) -> Decimal:
        total = sum((a.amount for a in self.adjustments if group is None or a.group == group), _Z)
        for s in self.services:
            total += sum((a.amount for a in s.adjustments if group is None or a.group == group), _Z)
        return total


@dataclass(slots=True)
class ProviderAdjustment:
    """PLB: one reason/reference/amount triplet."""

    provider_id: str
    fiscal_period_end: str
    reason: str
    reference: str
    amount: Decimal


@dataclass
class Remittance:
    """One 835 transaction set."""

    header: SetHeader
    handling: str = ""  # BPR01
    total_paid: Decimal = _Z  # BPR02
    credit_debit: str = ""
    method: str = ""  # BPR04
    payment_date: str | None = None  # BPR16
    trace_number: str = ""  # TRN02
    trace_originator: str = ""  # TRN03 (payer id, often '1' + EIN)
    production_date: str | None = None  # DTM*405
    payer_name: str = ""
    payer_id: str = ""  # N1*PR N104, else REF*2U, else TRN03
    payee_name: str = ""
    payee_npi: str | None = None
    payee_tin: str | None = None
    claims: list[ClaimPayment] = field(default_factory=list)
    provider_adjustments: list[ProviderAdjustment] = field(default_factory=list)
    balance_errors: list[BalanceError] = field(default_factory=list)
    claim_count: int = 0
    paid_sum: Decimal = _Z
    #: streaming mode only: the claim closed by SE, handed to the iterator with the remittance
    last_claim: ClaimPayment | None = None

    @property
    def payment_identity(self) -> tuple[str, str]:
        """(TRN02 trace number, payer id): the same pair means the same payment delivered again."""
        return self.trace_number, self.payer_id or self.trace_originator


_LOOP_ALLOWED: dict[str, frozenset[str]] = {
    "HEADER": frozenset({"TRN", "CUR", "REF", "DTM", "N1"}),
    "1000A": frozenset({"N2", "N3", "N4", "REF", "PER", "N1"}),
    "1000B": frozenset({"N2", "N3", "N4", "REF", "RDM", "LX", "CLP", "PLB"}),
    "2000": frozenset({"TS3", "TS2", "CLP"}),
    "2100": frozenset({"CAS", "NM1", "MIA", "MOA", "REF", "DTM", "PER", "AMT", "QTY", "SVC", "CLP", "LX", "PLB"}),
    "2110": frozenset({"DTM", "CAS", "REF", "AMT", "QTY", "LQ", "SVC", "CLP", "LX", "PLB"}),
    "SUMMARY": frozenset({"PLB"}),
}


class Decoder835:
    """Set handler for one 835. ``stream=True``: finished claims are returned from ``feed`` and not
    kept; otherwise they are collected in ``remittance.claims``."""

    def __init__(self, header: SetHeader, *, stream: bool = False) -> None:
        self.rem = Remittance(header)
        self.stream = stream
        self.loop = "START"
        self.claim: ClaimPayment | None = None
        self.service: ServicePayment | None = None
        self._comp = header.interchange.separators.component
        self._rep = header.interchange.separators.repetition

    # -- streaming --------------------------------------------------------------------------
    def _close_claim(self) -> ClaimPayment | None:
        c = self.claim
        if c is None:
            return None
        self.claim = None
        self.service = None
        _balance_claim(c)
        rem = self.rem
        rem.claim_count += 1
        rem.paid_sum += c.paid
        if c.balance_errors:
            rem.balance_errors.extend(c.balance_errors)
        if self.stream:
            return c
        rem.claims.append(c)
        return None

    def feed(self, seg: list[str], position: int) -> ClaimPayment | None:
        tag = seg[0]
        loop = self.loop
        if loop == "START":
            if tag != "BPR":
                raise StructureError("835 must start with BPR after ST", segment_id=tag, loop_id="HEADER",
                                     code="3")
            self._bpr(seg)
            self.loop = "HEADER"
            return None
        if tag not in _LOOP_ALLOWED[loop]:
            raise StructureError(f"{tag} is not allowed here", segment_id=tag, loop_id=loop, code="2")
        if tag == "SVC":
            self._svc(seg, position)
            self.loop = "2110"
            return None
        if tag == "CAS":
            target = self.service.adjustments if loop == "2110" else self.claim.adjustments  # type: ignore[union-attr]
            _cas(seg, target)
            return None
        if tag == "DTM":
            self._dtm(seg, loop)
            return None
        if tag == "REF":
            if loop == "2110" and len(seg) > 2 and seg[1] == "6R":
                self.service.line_control_number = seg[2]  # type: ignore[union-attr]
            elif loop == "1000B" and len(seg) > 2 and seg[1] == "TJ":
                self.rem.payee_tin = seg[2]
            elif loop == "1000A" and len(seg) > 2 and seg[1] == "2U" and not self.rem.payer_id:
                self.rem.payer_id = seg[2]
            return None
        if tag == "AMT":
            if loop == "2110" and len(seg) > 2 and seg[1] == "B6":
                self.service.allowed = amount(seg, 2)  # type: ignore[union-attr]
            return None
        if tag == "LQ":
            if len(seg) > 2 and seg[1] == "HE":
                self.service.remarks.append(seg[2])  # type: ignore[union-attr]
            return None
        if tag == "CLP":
            done = self._close_claim()
            self._clp(seg, position)
            self.loop = "2100"
            return done
        if tag == "NM1":
            c = self.claim
            if c is not None and len(seg) > 1:
                if seg[1] == "QC":
                    c.patient_name = (el(seg, 3), el(seg, 4))
                    c.member_id = el(seg, 9) or None
                elif seg[1] == "82":
                    c.rendering_npi = el(seg, 9) or None
                elif seg[1] == "TT":
                    c.crossover_payer = (el(seg, 3), el(seg, 9))
            return None
        if tag in ("MOA", "MIA"):
            rng = range(3, 8) if tag == "MOA" else (5, 20, 21, 22, 23)
            self.claim.remarks.extend(seg[i] for i in rng if i < len(seg) and seg[i] and not _is_num(seg[i]))  # type: ignore[union-attr]
            return None
        if tag == "LX":
            done = self._close_claim()
            self.loop = "2000"
            return done
        if tag == "N1":
            q = el(seg, 1)
            if q == "PR" and loop == "HEADER":
                if not self.rem.trace_number:  # TRN is required: without it no payment identity
                    raise StructureError("835 has no TRN02 reassociation trace number before the payer (1000A)",
                                         segment_id="TRN", loop_id="HEADER", code="3")
                self.rem.payer_name = el(seg, 2)
                if el(seg, 3) in ("XV", "PI"):
                    self.rem.payer_id = el(seg, 4)
                self.loop = "1000A"
            elif q == "PE" and loop == "1000A":
                self.rem.payee_name = el(seg, 2)
                if el(seg, 3) == "XX":
                    self.rem.payee_npi = el(seg, 4)
                elif el(seg, 3) == "FI":
                    self.rem.payee_tin = el(seg, 4)
                self.loop = "1000B"
            else:
                raise StructureError(f"N1*{q} is not expected here", segment_id="N1", loop_id=loop, code="2")
            return None
        if tag == "TRN":
            self.rem.trace_number = el(seg, 2)
            self.rem.trace_originator = el(seg, 3)
            return None
        if tag == "PLB":
            done = self._close_claim()
            self._plb(seg)
            self.loop = "SUMMARY"
            return done
        return None  # CUR, N2-N4, PER, RDM, TS3, TS2, MIA/MOA amounts, QTY: not needed downstream

    def finish(self) -> Remittance | ClaimPayment | None:
        if self.loop in ("START", "HEADER", "1000A"):
            raise StructureError("835 ends before the payee (1000B)", segment_id="SE", loop_id=self.loop,
                                 code="3")
        last = self._close_claim()
        _balance_payment(self.rem)
        if self.stream:
            self.rem.last_claim = last
        return self.rem

    # -- segment readers --------------------------------------------------------------------
    def _bpr(self, seg: list[str]) -> None:
        r = self.rem
        r.handling = el(seg, 1)
        r.total_paid = amount(seg, 2)  # type: ignore[assignment]
        r.credit_debit = el(seg, 3)
        r.method = el(seg, 4)
        if el(seg, 16):
            r.payment_date = d8(seg[16], "BPR", 16)

    def _clp(self, seg: list[str], position: int) -> None:
        if len(seg) < 8 or not seg[1]:
            raise DataElementError("CLP needs CLP01-CLP07", segment_id="CLP", loop_id="2100",
                                   element_position=len(seg), code="1")
        self.claim = ClaimPayment(seg[1], seg[2], amount(seg, 3), amount(seg, 4),  # type: ignore[arg-type]
                                  amount(seg, 5, required=False) or _Z, seg[6], seg[7], el(seg, 8), el(seg, 9),
                                  position=position)

    def _svc(self, seg: list[str], position: int) -> None:
        if self.claim is None:
            raise StructureError("SVC before any CLP", segment_id="SVC", loop_id="2110", code="7")
        comp = seg[1].split(self._comp) if len(seg) > 1 else [""]
        if len(comp) < 2 or not comp[1]:
            raise DataElementError("SVC01 needs a qualifier and a procedure code", segment_id="SVC",
                                   loop_id="2110", element_position=1, code="1")
        units = amount(seg, 5, required=False)
        original = None
        if len(seg) > 6 and seg[6]:
            original = seg[6].split(self._comp)[1] if self._comp in seg[6] else seg[6]
        sp = ServicePayment(comp[0], comp[1], comp[2:6], amount(seg, 2), amount(seg, 3),  # type: ignore[arg-type]
                            units if units is not None else Decimal(1), original, position=position)
        self.claim.services.append(sp)
        self.service = sp

    def _dtm(self, seg: list[str], loop: str) -> None:
        q = el(seg, 1)
        if len(seg) < 3:
            raise DataElementError("DTM needs a qualifier and a date", segment_id="DTM", loop_id=loop,
                                   element_position=2, code="1")
        value = d8(seg[2], "DTM", 2)
        if loop == "2110":
            s = self.service
            if q in ("472", "150"):
                s.service_date = value  # type: ignore[union-attr]
            elif q == "151":
                s.service_end = value  # type: ignore[union-attr]
        elif loop == "2100":
            c = self.claim
            if q == "050":
                c.received_date = value  # type: ignore[union-attr]
            elif q == "232":
                c.period = (value, c.period[1])  # type: ignore[union-attr]
            elif q == "233":
                c.period = (c.period[0], value)  # type: ignore[union-attr]
        elif q == "405":
            self.rem.production_date = value

    def _plb(self, seg: list[str]) -> None:
        if len(seg) < 5:
            raise DataElementError("PLB needs a provider, a date and one adjustment", segment_id="PLB",
                                   loop_id="SUMMARY", element_position=len(seg), code="1")
        provider, period = seg[1], d8(seg[2], "PLB", 2)
        for i in range(3, len(seg) - 1, 2):
            if not seg[i]:
                continue
            reason, _, ref = seg[i].partition(self._comp)
            self.rem.provider_adjustments.append(
                ProviderAdjustment(provider, period, reason, ref, amount(seg, i + 1)))  # type: ignore[arg-type]


def close_remittance(rem: Remittance) -> Remittance:
    """Totals and balance checks for a :class:`Remittance` assembled outside the segment decoder
    (the CHC v3 JSON 835, ``payer_adapters.chc_reports``), so an imbalance is reported the same
    way whichever form the payment arrived in. Call once, after every claim was added."""
    rem.claim_count = len(rem.claims)
    rem.paid_sum = sum((c.paid for c in rem.claims), _Z)
    for c in rem.claims:
        _balance_claim(c)
        rem.balance_errors.extend(c.balance_errors)
    _balance_payment(rem)
    return rem


def _is_num(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


def _cas(seg: list[str], target: list[Adjustment]) -> None:
    group = el(seg, 1)
    if not group:
        raise DataElementError("CAS01 group code missing", segment_id="CAS", element_position=1, code="1")
    n = len(seg)
    for i in range(2, n, 3):
        reason = seg[i]
        if not reason:
            continue
        amt = amount(seg, i + 1)
        qty = amount(seg, i + 2, required=False) if i + 2 < n else None
        target.append(Adjustment(group, reason, amt, qty))  # type: ignore[arg-type]


def _balance_claim(c: ClaimPayment) -> None:
    claim_adj = sum((a.amount for a in c.adjustments), _Z)
    line_adj = _Z
    for s in c.services:
        adj = sum((a.amount for a in s.adjustments), _Z)
        line_adj += adj
        if s.charge - adj != s.paid:
            c.balance_errors.append(BalanceError(
                f"line charge {s.charge} - adjustments {adj} != paid {s.paid}", segment_id="SVC",
                loop_id="2110", set_position=s.position, element_position=3))
    if c.charge - claim_adj - line_adj != c.paid:
        c.balance_errors.append(BalanceError(
            f"claim charge {c.charge} - adjustments {claim_adj + line_adj} != paid {c.paid}",
            segment_id="CLP", loop_id="2100", set_position=c.position, element_position=4))


def _balance_payment(r: Remittance) -> None:
    plb = sum((p.amount for p in r.provider_adjustments), _Z)
    if r.paid_sum - plb != r.total_paid:
        r.balance_errors.append(BalanceError(
            f"payment {r.total_paid} != claims paid {r.paid_sum} - provider adjustments {plb}",
            segment_id="BPR", loop_id="HEADER", set_position=2, element_position=2,
            control_number=r.header.control_number))
