"""271 005010X279A1 → eligibility records and per-service-type summaries (``fhir_271`` maps them).

Loop tree::

    ST BHT
    2000A HL*20  2100A NM1*PR AAA              information source (payer)
    2000B HL*21  2100B NM1*1P AAA              information receiver (provider)
    2000C HL*22  TRN*2 (echo of our trace)     subscriber
                 2100C NM1*IL N3 N4 DMG DTP AAA INS
                   2110C EB HSD* REF DTP AAA MSG*  LS 2120C NM1… LE
    2000D HL*23  TRN  2100D NM1*03 …  2110D EB …   dependent (same shape as 2000C)
    SE
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.hierarchy import opening
from payer_adapters.x12.values import amount, d8, el


@dataclass(slots=True)
class HealthServiceDelivery:
    """HSD: e.g. 20 visits (VS) per calendar year (23)."""

    quantity_qualifier: str
    quantity: Decimal | None
    unit: str
    sample_size: Decimal | None
    period: str
    periods: Decimal | None


@dataclass(slots=True)
class Benefit:
    """One EB with what follows it in 2110C/D."""

    info: str  # EB01
    coverage_level: str  # EB02 IND/FAM/…
    service_types: list[str]  # EB03 (repeats)
    insurance_type: str
    plan: str  # EB05
    period: str  # EB06
    amount: Decimal | None  # EB07
    percent: Decimal | None  # EB08 (0.2 = 20 %)
    quantity_qualifier: str  # EB09
    quantity: Decimal | None  # EB10
    auth_required: bool | None  # EB11
    in_network: bool | None  # EB12 (None for W/U)
    delivery: list[HealthServiceDelivery] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Reject:
    """AAA: request could not be answered (fully)."""

    loop_id: str
    valid: str  # AAA01
    reason: str  # AAA03
    follow_up: str  # AAA04


@dataclass(slots=True)
class ServiceSummary:
    """What a biller wants to know for one service type (and network)."""

    service_type: str
    in_network: bool | None
    active: bool | None = None
    copay: Decimal | None = None
    coinsurance_percent: Decimal | None = None  # 20 for 20 %
    deductible_total: Decimal | None = None
    deductible_remaining: Decimal | None = None
    out_of_pocket_total: Decimal | None = None
    out_of_pocket_remaining: Decimal | None = None
    visits_total: Decimal | None = None
    visits_used: Decimal | None = None
    visits_remaining: Decimal | None = None
    visits_period: str | None = None
    auth_required: bool | None = None
    messages: list[str] = field(default_factory=list)


@dataclass
class Eligibility:
    header: SetHeader
    reference: str = ""  # BHT03
    created: str = ""  # BHT04 (CCYYMMDD) and BHT05 time
    payer_name: str = ""
    payer_id: str = ""
    provider_npi: str | None = None
    trace_number: str | None = None  # TRN02 echoed from our 270
    member_id: str | None = None
    subscriber_name: tuple[str, str] | None = None  # PHI, never logged
    dependent: bool = False
    plan_dates: dict[str, str] = field(default_factory=dict)
    benefits: list[Benefit] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def active(self) -> bool | None:
        infos = [b.info for b in self.benefits]
        if any(i in ("1", "2", "3", "4", "5") for i in infos):
            return True
        if any(i in ("6", "7", "8") for i in infos):
            return False
        return None

    @property
    def plan(self) -> str | None:
        return next((b.plan for b in self.benefits if b.info == "1" and b.plan), None)

    def summaries(self) -> list[ServiceSummary]:
        """One summary per (service type, network), in first-seen order."""
        out: dict[tuple[str, bool | None], ServiceSummary] = {}
        for b in self.benefits:
            for st in b.service_types or ["30"]:
                s = out.setdefault((st, b.in_network), ServiceSummary(st, b.in_network))
                _apply(s, b)
        return list(out.values())

    def summary(self, service_type: str, in_network: bool | None = True) -> ServiceSummary:
        """One service type's benefits for a network: EB rows without a network indicator (EB12)
        apply to every network, so they are the base and the network's own rows override them."""
        merged = ServiceSummary(service_type, in_network)
        for s in self.summaries():
            if s.service_type != service_type or s.in_network not in (None, in_network):
                continue
            base_only = s.in_network is None
            for name in ServiceSummary.__slots__:  # type: ignore[attr-defined]
                if name in ("service_type", "in_network"):
                    continue
                value = getattr(s, name)
                if name == "messages":
                    merged.messages.extend(value)
                elif value is not None and (not base_only or getattr(merged, name) is None):
                    setattr(merged, name, value)
        return merged


def _apply(s: ServiceSummary, b: Benefit) -> None:
    if b.auth_required is not None:
        s.auth_required = b.auth_required
    s.messages.extend(b.messages)
    remaining = b.period == "29"
    if b.info in ("1", "2", "3", "4", "5"):
        s.active = True
    elif b.info in ("6", "7", "8"):
        s.active = False
    elif b.info == "B" and b.amount is not None:
        s.copay = b.amount
    elif b.info == "A" and b.percent is not None:
        s.coinsurance_percent = b.percent * 100
    elif b.info == "C" and b.amount is not None:
        if remaining:
            s.deductible_remaining = b.amount
        else:
            s.deductible_total = b.amount
    elif b.info == "G" and b.amount is not None:
        if remaining:
            s.out_of_pocket_remaining = b.amount
        else:
            s.out_of_pocket_total = b.amount
    elif b.info == "F" and b.quantity is not None and b.quantity_qualifier in ("VS", "P6", "FL", ""):
        if remaining:
            s.visits_remaining = b.quantity
        elif b.quantity_qualifier == "99":
            s.visits_used = b.quantity
        else:
            s.visits_total = b.quantity
            s.visits_period = b.period or (b.delivery[0].period if b.delivery else None)
    elif b.info == "F" and b.quantity_qualifier == "99" and b.quantity is not None:
        s.visits_used = b.quantity
    if s.visits_total is not None and s.visits_remaining is not None and s.visits_used is None:
        s.visits_used = s.visits_total - s.visits_remaining


class Decoder271:
    def __init__(self, header: SetHeader) -> None:
        self.elig = Eligibility(header)
        self.loop = "HEADER"
        self._rep = header.interchange.separators.repetition
        self._comp = header.interchange.separators.component
        self._in_ls = False

    def _bht(self, seg: list[str]) -> None:
        self.elig.reference = el(seg, 3)
        self.elig.created = f"{el(seg, 4)}{el(seg, 5)}"

    def _hl(self, seg: list[str]) -> None:
        level = el(seg, 3)
        self.loop = {"20": "2000A", "21": "2000B", "22": "2000C", "23": "2000D"}.get(level, "")
        if not self.loop:
            raise StructureError(f"HL level {level or '?'} unknown in a 271", segment_id="HL",
                                 loop_id="2000", element_position=3, code="7")
        if self.loop == "2000D":
            self.elig.dependent = True

    def feed(self, seg: list[str], position: int) -> None:
        tag, e = seg[0], self.elig
        if opening(seg, self.loop, on_bht=self._bht, on_hl=self._hl):
            return
        sub = self.loop[-1]  # A B C D
        if tag == "LS":
            self._in_ls = True
            return
        if tag == "LE":
            self._in_ls = False
            return
        if self._in_ls:
            return  # 2120 benefit-related entity: not needed for the summary
        if tag == "NM1":
            q = el(seg, 1)
            if sub == "A":
                e.payer_name, e.payer_id = el(seg, 3), el(seg, 9)
            elif sub == "B" and el(seg, 8) == "XX":
                e.provider_npi = el(seg, 9)
            elif sub in ("C", "D") and q in ("IL", "03"):
                if q == "IL":
                    e.member_id = el(seg, 9) or e.member_id
                e.subscriber_name = (el(seg, 3), el(seg, 4))
            self.loop = "2100" + sub
        elif tag == "TRN":
            if el(seg, 1) == "2" or not e.trace_number:
                e.trace_number = el(seg, 2)
        elif tag == "AAA":
            e.rejects.append(Reject(self.loop, el(seg, 1), el(seg, 3), el(seg, 4)))
        elif tag == "DTP":
            if self.loop.startswith("2100"):
                v = el(seg, 3)
                e.plan_dates[el(seg, 1)] = d8(v.split("-")[0], "DTP", 3) if v else ""
        elif tag == "EB":
            if sub not in ("C", "D"):
                raise StructureError("EB outside a subscriber or dependent loop", segment_id="EB",
                                     loop_id=self.loop, code="7")
            net = el(seg, 12)
            e.benefits.append(Benefit(
                el(seg, 1), el(seg, 2), [x for x in el(seg, 3).split(self._rep) if x], el(seg, 4), el(seg, 5),
                el(seg, 6), amount(seg, 7, required=False), amount(seg, 8, required=False), el(seg, 9),
                amount(seg, 10, required=False),
                {"Y": True, "N": False}.get(el(seg, 11)), {"Y": True, "N": False}.get(net)))
            self.loop = "2110" + sub
        elif tag == "HSD":
            if not self.loop.startswith("2110"):
                raise StructureError("HSD before any EB", segment_id="HSD", loop_id=self.loop, code="7")
            e.benefits[-1].delivery.append(HealthServiceDelivery(
                el(seg, 1), amount(seg, 2, required=False), el(seg, 3), amount(seg, 4, required=False),
                el(seg, 5), amount(seg, 6, required=False)))
        elif tag == "MSG":
            if self.loop.startswith("2110"):
                e.benefits[-1].messages.append(el(seg, 1))
        elif tag in ("N3", "N4", "DMG", "INS", "REF", "PER", "PRV", "HI", "MPI", "III", "N2"):
            return
        else:
            raise StructureError(f"{tag} not expected in a 271", segment_id=tag, loop_id=self.loop, code="2")

    def finish(self) -> Eligibility:
        return self.elig
