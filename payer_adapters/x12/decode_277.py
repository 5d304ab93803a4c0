"""277 claim status response 005010X212 → one record per claim.

The 277 answers our 276 (``encode_276``); it is not the 277CA (005010X214), which acknowledges an
837 unasked. Loop tree::

    ST BHT*0010*08
    2000A HL*20  2100A NM1*PR (payer)                  [2200A-C: TRN STC when a level is refused]
    2000B HL*21  2100B NM1*41 (information receiver)
    2000C HL*19  2100C NM1*1P (service provider)
    2000D HL*22  2100D NM1*IL (subscriber)             2200D TRN*2 (echo of our TRN02) STC+ REF*1K
                                                             REF*EJ REF*BLT … DTP*472
                                                       2220D SVC STC+ REF*FJ DTP*472
    2000E HL*23  2100E NM1*QC (dependent patient)      2200E / 2220E as 2200D / 2220D
    SE

2200D/E repeat: every ``TRN`` starts a claim. Each STC keeps its statuses (STC01, STC10, STC11 as
:class:`Status`, shared with the 277CA) and its money: STC04 billed, STC05 paid, STC06 the
adjudication or payment date, STC07 payment method, STC08 check or EFT date, STC09 check or EFT
number. The first STC is the claim's current status; its category (and a status code the table
names, e.g. 35 "not found") gives :attr:`ClaimStatus.lifecycle` from
``data/claim_status_lifecycle.json``. The records know nothing of FHIR (``fhir_277`` maps them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from payer_adapters.x12.codes import table
from payer_adapters.x12.decode_277ca import LEVELS, LevelAck, Status
from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.hierarchy import opening
from payer_adapters.x12.values import amount, d8, date_or_period, el

LIFECYCLE: dict[str, Any] = table("claim_status_lifecycle")
#: HL03 of the patient levels: subscriber (2000D) and dependent (2000E).
PATIENT_LEVELS = {"22": "D", "23": "E"}


@dataclass(slots=True)
class Stc:
    """One STC segment: its statuses and what it says once for all of them."""

    statuses: list[Status]
    effective_date: str | None = None  # STC02
    billed: Decimal | None = None  # STC04
    paid: Decimal | None = None  # STC05
    adjudication_date: str | None = None  # STC06
    payment_method: str = ""  # STC07 (ACH, CHK, …)
    check_date: str | None = None  # STC08
    check_number: str = ""  # STC09
    message: str = ""  # STC12


@dataclass(slots=True)
class LineStatus277:
    """A 2220D/E service line: SVC and its statuses."""

    code: str
    modifiers: list[str]
    charge: Decimal | None
    paid: Decimal | None
    units: Decimal | None = None
    stcs: list[Stc] = field(default_factory=list)
    line_control_number: str | None = None  # REF*FJ
    service_start: str | None = None
    service_end: str | None = None

    @property
    def statuses(self) -> list[Status]:
        return [s for stc in self.stcs for s in stc.statuses]


@dataclass(slots=True)
class ClaimStatus:
    """One claim's answer (a 2200D or 2200E loop) with who it concerns."""

    trace: str  # TRN02: our 276 TRN02 echoed
    stcs: list[Stc] = field(default_factory=list)
    patient_control_number: str | None = None  # REF*EJ (our CLM01)
    payer_claim_number: str | None = None  # REF*1K
    bill_type: str | None = None  # REF*BLT
    clearinghouse_trace: str | None = None  # REF*D9
    service_start: str | None = None  # DTP*472
    service_end: str | None = None
    lines: list[LineStatus277] = field(default_factory=list)
    loop: str = "2200D"  # 2200E when the patient is a dependent
    payer_id: str = ""  # 2100A NM109
    payer_name: str = ""
    provider_qualifier: str = ""  # 2100C NM108 (XX NPI, FI TIN, SV)
    provider_id: str = ""  # 2100C NM109
    member_id: str | None = None  # 2100D NM109 (the subscriber's), else 2100E NM109
    patient_last: str = ""  # 2100E NM103 for a dependent, else 2100D
    patient_first: str = ""

    @property
    def statuses(self) -> list[Status]:
        """Every status of every STC, in file order (the current one first)."""
        return [s for stc in self.stcs for s in stc.statuses]

    @property
    def current(self) -> Status:
        return self.stcs[0].statuses[0]

    @property
    def claim_key(self) -> str:
        """Our patient control number: REF*EJ, else the trace (our 276 writes CLM01 there)."""
        return self.patient_control_number or self.trace

    @property
    def provider_npi(self) -> str | None:
        return self.provider_id if self.provider_qualifier == "XX" and self.provider_id else None

    def _money(self, name: str) -> Any:
        return next((getattr(s, name) for s in self.stcs if getattr(s, name) not in (None, "")), None)

    @property
    def billed(self) -> Decimal | None:
        return self._money("billed")

    @property
    def paid(self) -> Decimal | None:
        return self._money("paid")

    @property
    def check_number(self) -> str | None:
        return self._money("check_number")

    @property
    def check_date(self) -> str | None:
        return self._money("check_date")

    @property
    def adjudication_date(self) -> str | None:
        return self._money("adjudication_date")

    @property
    def payment_method(self) -> str | None:
        return self._money("payment_method")

    @property
    def _lifecycle_entry(self) -> dict[str, str]:
        s = self.current
        return (LIFECYCLE["statuses"].get(s.code) or LIFECYCLE["categories"].get(s.category)
                or LIFECYCLE["unknown"])

    @property
    def lifecycle(self) -> str:
        """Where the claim stands (paid, denied, pending, rejected, not-found, …)."""
        return self._lifecycle_entry["lifecycle"]

    @property
    def action(self) -> str:
        """What to do next, in a few words (from the same table)."""
        return self._lifecycle_entry["action"]


@dataclass
class StatusResponse277:
    """One 277 transaction set."""

    header: SetHeader
    reference: str = ""  # BHT03
    date: str | None = None  # BHT04
    payer_id: str = ""
    payer_name: str = ""
    receiver_id: str = ""  # 2100B NM109
    levels: list[LevelAck] = field(default_factory=list)  # 2000A/B/C
    claims: list[ClaimStatus] = field(default_factory=list)

    @property
    def level_rejections(self) -> list[LevelAck]:
        return [lvl for lvl in self.levels if lvl.rejected]


class Decoder277:
    def __init__(self, header: SetHeader) -> None:
        self.res = StatusResponse277(header)
        self._comp = header.interchange.separators.component
        self.loop = "HEADER"
        self._level: LevelAck | None = None  # the 2000A/B/C being read
        self._provider = ("", "")
        self._subscriber: tuple[str, str, str] = ("", "", "")  # member id, last, first
        self._patient: tuple[str, str, str] | None = None  # a dependent's
        self._suffix = "D"
        self._claim: ClaimStatus | None = None
        self._line: LineStatus277 | None = None
        self._named = False  # the current 2000D/E has its NM1

    # -- STC ---------------------------------------------------------------------------------
    def _stc(self, seg: list[str]) -> Stc:
        date = d8(seg[2], "STC", 2) if el(seg, 2) else None
        action, charge, message = el(seg, 3), amount(seg, 4, required=False), el(seg, 12)
        statuses = []
        for pos in (1, 10, 11):
            if pos > 1 and not el(seg, pos):
                continue
            parts = el(seg, pos).split(self._comp)
            if not parts[0]:
                raise StructureError(f"STC{pos:02d} has no status category code", segment_id="STC",
                                     element_position=pos, loop_id=self.loop, code="1")
            parts += [""] * (3 - len(parts))
            statuses.append(Status(parts[0], parts[1], parts[2], date, action, charge, pos, message))
        return Stc(statuses, date, charge, amount(seg, 5, required=False),
                   d8(seg[6], "STC", 6) if el(seg, 6) else None, el(seg, 7),
                   d8(seg[8], "STC", 8) if el(seg, 8) else None, el(seg, 9), message)

    # -- HL ------------------------------------------------------------------------------------
    def _hl(self, seg: list[str]) -> None:
        code = el(seg, 3)
        self._claim = self._line = None
        info = LEVELS.get(code)
        if info is not None:
            self.loop = info["hl"]
            parent = self.res.levels[-1] if self.res.levels else None
            self._level = LevelAck(info["code"], info["loop"], el(seg, 1), parent=parent)
            self.res.levels.append(self._level)
            return
        if code not in PATIENT_LEVELS:
            raise StructureError(f"HL level {code or '?'} unknown in a 277", segment_id="HL", loop_id="2000",
                                 element_position=3, code="7")
        if not self.res.levels or self.res.levels[-1].loop != "2200C":
            raise StructureError("a subscriber or dependent HL needs a service provider HL (19) before it",
                                 segment_id="HL", loop_id="2000C", code="3")
        self._level = None
        self._named = False
        self._suffix = PATIENT_LEVELS[code]
        self.loop = f"2000{self._suffix}"
        if code == "22":
            self._subscriber, self._patient = ("", "", ""), None
        else:
            self._patient = ("", "", "")

    def _level_segment(self, lvl: LevelAck, tag: str, seg: list[str]) -> None:
        if tag == "NM1":
            lvl.entity, lvl.name, lvl.id_qualifier, lvl.id = el(seg, 1), el(seg, 3), el(seg, 8), el(seg, 9)
            if lvl.loop == "2200A":
                self.res.payer_name, self.res.payer_id = lvl.name, lvl.id
            elif lvl.loop == "2200B":
                self.res.receiver_id = lvl.id
            else:
                self._provider = (lvl.id_qualifier, lvl.id)
        elif tag == "TRN":
            lvl.trace = el(seg, 2) or None
        elif tag == "STC":
            lvl.statuses += self._stc(seg).statuses
        elif tag in ("PER", "DTP", "REF", "QTY", "AMT"):
            return  # contact and level totals: nothing a claim's status depends on
        else:
            raise StructureError(f"{tag} not expected in a 277 {self.loop}", segment_id=tag, loop_id=self.loop,
                                 code="2")

    # -- claims --------------------------------------------------------------------------------
    def _start_claim(self, seg: list[str]) -> None:
        member, last, first = self._subscriber
        if self._patient is not None:
            member = self._patient[0] or member
            last, first = self._patient[1], self._patient[2]
        self._claim = ClaimStatus(el(seg, 2), loop=f"2200{self._suffix}", payer_id=self.res.payer_id,
                                  payer_name=self.res.payer_name, provider_qualifier=self._provider[0],
                                  provider_id=self._provider[1], member_id=member or None,
                                  patient_last=last, patient_first=first)
        if not self._claim.trace:
            raise StructureError("TRN02 (the status request's trace number) is missing", segment_id="TRN",
                                 element_position=2, loop_id=self._claim.loop, code="1")
        self._line = None
        self.loop = self._claim.loop
        self.res.claims.append(self._claim)

    def _claim_segment(self, claim: ClaimStatus, tag: str, seg: list[str]) -> None:
        line = self._line
        if tag == "STC":
            (line.stcs if line else claim.stcs).append(self._stc(seg))
        elif tag == "REF":
            q, v = el(seg, 1), el(seg, 2) or None
            if line is not None:
                if q == "FJ":
                    line.line_control_number = v
                return
            if q == "1K":
                claim.payer_claim_number = v
            elif q == "EJ":
                claim.patient_control_number = v
            elif q == "BLT":
                claim.bill_type = v
            elif q == "D9":
                claim.clearinghouse_trace = v
        elif tag == "DTP":
            if el(seg, 1) != "472":
                return
            start, end = date_or_period(el(seg, 2), el(seg, 3), "DTP", 3)
            if line is not None:
                line.service_start, line.service_end = start, end
            else:
                claim.service_start, claim.service_end = start, end
        elif tag == "SVC":
            if not claim.stcs:
                raise StructureError("SVC before the claim's STC", segment_id="SVC", loop_id=claim.loop, code="3")
            comp = el(seg, 1).split(self._comp)
            self._line = LineStatus277(comp[1] if len(comp) > 1 else comp[0], [m for m in comp[2:6] if m],
                                       amount(seg, 2, required=False), amount(seg, 3, required=False),
                                       amount(seg, 7, required=False))
            claim.lines.append(self._line)
            self.loop = f"2220{self._suffix}"
        else:
            raise StructureError(f"{tag} not expected in a 277 {self.loop}", segment_id=tag, loop_id=self.loop,
                                 code="2")

    def _bht(self, seg: list[str]) -> None:
        self.res.reference = el(seg, 3)
        self.res.date = d8(seg[4], "BHT", 4) if el(seg, 4) else None

    def feed(self, seg: list[str], position: int) -> None:
        tag = seg[0]
        if opening(seg, self.loop, on_bht=self._bht, on_hl=self._hl):
            return
        if self._level is not None:
            self._level_segment(self._level, tag, seg)
            return
        if tag == "TRN":
            if not self._named:
                raise StructureError(f"TRN before the NM1 of 2100{self._suffix}", segment_id="TRN",
                                     loop_id=self.loop, code="3")
            self._start_claim(seg)
            return
        if self._claim is None:
            if tag == "NM1":
                who = (el(seg, 9), el(seg, 3), el(seg, 4))
                if self._suffix == "D":
                    self._subscriber = who
                else:
                    self._patient = who
                self._named = True
                self.loop = f"2100{self._suffix}"
                return
            if tag == "DMG":
                return
            raise StructureError(f"{tag} before the claim's TRN", segment_id=tag, loop_id=self.loop, code="3")
        self._claim_segment(self._claim, tag, seg)

    def finish(self) -> StatusResponse277:
        for n, c in enumerate(self.res.claims, start=1):
            if not c.stcs:
                raise StructureError(f"claim {n} has no STC", segment_id="STC", loop_id=c.loop, code="3")
        return self.res
