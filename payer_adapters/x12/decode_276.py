"""276 claim status request 005010X212 → typed inquiries (our own outbound transaction read back:
for validation, which pyx12 cannot do for a 5010 276, and for whoever answers it with a 277).

Order is checked as the guide nests it: BHT, then HL 20 (NM1*PR), HL 21 (NM1*41), HL 19
(NM1*1P), HL 22 (DMG, NM1*IL) and, for a dependent, HL 23 (DMG, NM1*QC); a claim (2200D/E)
starts at its TRN and holds REF, AMT and DTP; 2210 lines start at SVC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.hierarchy import opening
from payer_adapters.x12.values import amount, date_or_period, el

#: HL03 → (the HL03 its parent must have, the loop it opens, the NM101 it must carry).
_LEVELS = {"20": ("", "2000A", "PR"), "21": ("20", "2000B", "41"), "19": ("21", "2000C", "1P"),
           "22": ("19", "2000D", "IL"), "23": ("22", "2000E", "QC")}
_CLAIM_SEGMENTS = {"REF", "AMT", "DTP", "SVC"}


@dataclass(slots=True)
class StatusInquiry:
    """One claim asked about (a 2200D or 2200E)."""

    trace: str  # TRN02
    payer_id: str = ""
    provider_npi: str = ""
    member_id: str = ""
    subscriber_last: str = ""
    patient_last: str = ""  # the dependent's (2100E), else the subscriber's
    patient_first: str = ""
    dependent: bool = False
    patient_control_number: str | None = None  # REF*EJ
    payer_claim_number: str | None = None  # REF*1K
    billed: Decimal | None = None  # AMT*T3
    service_start: str | None = None  # DTP*472
    service_end: str | None = None
    lines: int = 0  # 2210 SVC count


@dataclass
class StatusRequest276:
    header: SetHeader
    reference: str = ""  # BHT03
    inquiries: list[StatusInquiry] = field(default_factory=list)


class Decoder276:
    def __init__(self, header: SetHeader) -> None:
        self.req = StatusRequest276(header)
        self.loop = "HEADER"
        self._hl_code = ""
        self._nm1_seen = False
        self._ids: dict[str, str] = {}  # HL03 → NM109 (and names for 22/23)
        self._names: dict[str, tuple[str, str]] = {}
        self._hl_codes: dict[str, str] = {}  # HL01 → HL03
        self._claim: StatusInquiry | None = None

    def _hl(self, seg: list[str]) -> None:
        code, parent = el(seg, 3), el(seg, 2)
        if code not in _LEVELS:
            raise StructureError(f"HL level {code or '?'} unknown in a 276", segment_id="HL", loop_id="2000",
                                 element_position=3, code="7")
        want, loop, _ = _LEVELS[code]
        if self._hl_codes.get(parent, "") != want:
            raise StructureError(f"HL {code} must sit under HL {want or 'nothing'}", segment_id="HL",
                                 element_position=2, loop_id=loop, code="7")
        self._hl_codes[el(seg, 1)] = code
        self._hl_code, self.loop, self._nm1_seen, self._claim = code, loop, False, None

    def _bht(self, seg: list[str]) -> None:
        self.req.reference = el(seg, 3)

    def feed(self, seg: list[str], position: int) -> None:
        tag = seg[0]
        if opening(seg, self.loop, on_bht=self._bht, on_hl=self._hl):
            return
        code = self._hl_code
        if tag == "DMG" and code in ("22", "23") and not self._nm1_seen:
            return
        if tag == "NM1" and not self._nm1_seen:
            if el(seg, 1) != _LEVELS[code][2]:
                raise StructureError(f"NM101 must be {_LEVELS[code][2]} in {self.loop}", segment_id="NM1",
                                     element_position=1, loop_id=self.loop, code="7")
            self._nm1_seen = True
            self._ids[code], self._names[code] = el(seg, 9), (el(seg, 3), el(seg, 4))
            self.loop = "2100" + self.loop[-1]
            return
        if tag == "TRN" and code in ("22", "23") and self._nm1_seen:
            self._start(seg)
            return
        if self._claim is not None and tag in _CLAIM_SEGMENTS:
            self._claim_segment(self._claim, tag, seg)
            return
        raise StructureError(f"{tag} not expected in a 276 {self.loop}", segment_id=tag, loop_id=self.loop, code="2")

    def _start(self, seg: list[str]) -> None:
        if el(seg, 1) != "1" or not el(seg, 2):
            raise StructureError("TRN must be TRN*1 with a trace number", segment_id="TRN", element_position=2,
                                 loop_id="2200" + self.loop[-1], code="1")
        dependent = self._hl_code == "23"
        last, first = self._names[self._hl_code]
        self._claim = StatusInquiry(el(seg, 2), self._ids.get("20", ""), self._ids.get("19", ""),
                                    self._ids.get("22", ""), self._names.get("22", ("", ""))[0], last, first,
                                    dependent)
        self.loop = "2200" + self.loop[-1]
        self.req.inquiries.append(self._claim)

    def _claim_segment(self, claim: StatusInquiry, tag: str, seg: list[str]) -> None:
        if tag == "SVC":
            claim.lines += 1
            self.loop = "2210" + self.loop[-1]
        elif self.loop.startswith("2210"):
            if tag not in ("REF", "DTP"):
                raise StructureError(f"{tag} not expected in a 276 {self.loop}", segment_id=tag, loop_id=self.loop,
                                     code="2")
        elif tag == "REF":
            q, v = el(seg, 1), el(seg, 2) or None
            if q == "EJ":
                claim.patient_control_number = v
            elif q == "1K":
                claim.payer_claim_number = v
        elif tag == "AMT" and el(seg, 1) == "T3":
            claim.billed = amount(seg, 2)
        elif tag == "DTP" and el(seg, 1) == "472":
            claim.service_start, claim.service_end = date_or_period(el(seg, 2), el(seg, 3), "DTP", 3)

    def finish(self) -> StatusRequest276:
        if not self.req.inquiries:
            raise StructureError("a 276 needs at least one claim (TRN)", segment_id="TRN", loop_id="2200D", code="3")
        return self.req
