"""277CA 005010X214 → acknowledgment records (claim level and the levels above).

Loop tree::

    ST BHT
    2000A HL*20  2100A NM1 (payer/clearinghouse)  2200A TRN DTP*050 DTP*009
    2000B HL*21  2100B NM1*41 (submitter)         2200B TRN*2 (= BHT03 of our 837) STC QTY AMT
    2000C HL*19  2100C NM1*85 (billing provider)  2200C TRN STC REF QTY AMT
    2000D HL*PT  2100D NM1*QC (patient)           2200D TRN*2 (= our CLM01) STC+ REF*1K REF*D9 DTP*472
                                                  2220D SVC STC+ REF*FJ (line control) DTP*472
    SE

A payer can reject above the claim: a whole batch at the information receiver (2200B) or every
claim of one billing provider (2200C), usually without listing those claims. Each 2000A/B/C
becomes a :class:`LevelAck`; each claim knows the batch (2200B TRN02) and billing provider (2100C)
it sits under, so whoever posts can find "every claim of that batch / of that provider".

The records know nothing of FHIR; ``fhir_277ca`` maps them (a ClaimResponse per 2200D and an
OperationOutcome per rejecting level).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from payer_adapters.x12.codes import table
from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.hierarchy import opening
from payer_adapters.x12.values import amount, d8, el

_ERROR_CATEGORIES = {k for k, v in table("stc_categories").items() if v.get("outcome") == "error"}
LEVELS: dict[str, dict[str, Any]] = table("x12_277ca_levels")


@dataclass(slots=True)
class Status:
    """One status of an STC: category (C043-1), status (C043-2), entity (C043-3), plus what the
    STC says once for all of them: date (STC02), action (STC03 WQ accept / U reject) and amount
    (STC04). ``element`` is 1 for STC01 and 10 / 11 for the further statuses STC10 / STC11;
    ``message`` is STC12 free text."""

    category: str
    code: str
    entity: str
    date: str | None
    action: str
    amount: Decimal | None
    element: int = 1
    message: str = ""

    @property
    def rejected(self) -> bool:
        """An ``U`` action rejects; so does an error category in STC01 (or in a status with no
        action code at all, as clearinghouse JSON sends). STC10/STC11 under a ``WQ`` only add detail."""
        if self.action == "U":
            return True
        return self.category in _ERROR_CATEGORIES and (self.element == 1 or not self.action)


@dataclass(slots=True)
class LineStatus:
    code: str
    modifiers: list[str]
    charge: Decimal | None
    statuses: list[Status] = field(default_factory=list)
    line_control_number: str | None = None  # REF*FJ
    service_date: str | None = None


@dataclass(slots=True)
class LevelAck:
    """One level above the claim (2000A/B/C) and its 2200 statuses and totals.

    ``level`` is ``information-source`` (HL 20), ``information-receiver`` (HL 21, our submitter) or
    ``billing-provider`` (HL 19); ``loop`` the 2200 loop id. The entity is NM101 with the id NM109
    under the qualifier NM108 (46 ETIN, XX NPI, FI TIN, PI/XV payer). ``trace`` is this level's
    TRN02; ``batch_trace`` the 2200B TRN02 the level sits under (its own for 2200B): the BHT03 of
    the 837 being acknowledged."""

    level: str
    loop: str
    hl_id: str = ""
    entity: str = ""  # NM101
    id_qualifier: str = ""  # NM108
    id: str = ""  # NM109
    name: str = ""  # NM103 (organization or last name)
    trace: str | None = None  # TRN02
    batch_trace: str | None = None
    tin: str | None = None  # 2100C NM109 under FI, else 2200C REF*TJ
    statuses: list[Status] = field(default_factory=list)
    accepted_quantity: Decimal | None = None  # QTY*90 (2200B) / QTY*QA (2200C)
    rejected_quantity: Decimal | None = None  # QTY*AA / QTY*QC
    accepted_amount: Decimal | None = None  # AMT*YU
    rejected_amount: Decimal | None = None  # AMT*YY
    parent: "LevelAck | None" = field(default=None, repr=False, compare=False)

    @property
    def rejected(self) -> bool:
        return any(s.rejected for s in self.statuses)

    @property
    def npi(self) -> str | None:
        return self.id if self.id_qualifier == "XX" and self.id else None

    @property
    def etin(self) -> str | None:
        return self.id if self.id_qualifier == "46" and self.id else None

    @property
    def messages(self) -> list[str]:
        """Free text (STC12) of the level's statuses."""
        return [s.message for s in self.statuses if s.message]


@dataclass(slots=True)
class ClaimAck:
    patient_control_number: str = ""  # 2200D TRN02 = our CLM01
    statuses: list[Status] = field(default_factory=list)
    payer_claim_control_number: str | None = None  # REF*1K
    clearinghouse_trace: str | None = None  # REF*D9
    member_id: str | None = None
    service_date: str | None = None
    lines: list[LineStatus] = field(default_factory=list)
    billing_npi: str | None = None  # 2100C NM109 when NM108 = XX
    batch_trace: str | None = None  # 2200B TRN02 above this claim (= BHT03 of our 837)
    billing_provider_qualifier: str | None = None  # 2100C NM108 (XX, FI, SV)
    billing_provider_id: str | None = None  # 2100C NM109
    provider_trace: str | None = None  # 2200C TRN02

    @property
    def outcome(self) -> str:
        """``queued`` when accepted (A1/A2), ``error`` when any STC rejects it."""
        return "error" if any(s.rejected for s in self.statuses) else "queued"


@dataclass
class Ack277:
    header: SetHeader
    source_name: str = ""  # 2100A NM1*PR/AY name
    source_id: str = ""
    source_entity: str = ""  # 2100A NM101: AY clearinghouse, PR payer
    reference: str = ""  # BHT03: the sender's id for this acknowledgment
    receipt_date: str | None = None
    process_date: str | None = None
    levels: list[LevelAck] = field(default_factory=list)  # 2000A/B/C in file order
    claims: list[ClaimAck] = field(default_factory=list)

    @property
    def batch_statuses(self) -> list[Status]:
        """Every status above the claim level (2200A/B/C), in file order."""
        return [s for lvl in self.levels for s in lvl.statuses]

    @property
    def level_rejections(self) -> list[LevelAck]:
        """The levels with a rejecting status: each stands for claims it does not list."""
        return [lvl for lvl in self.levels if lvl.rejected]


class Decoder277CA:
    def __init__(self, header: SetHeader) -> None:
        self.ack = Ack277(header)
        self.level = ""  # HL03 of the current HL
        self.loop = "HEADER"
        self._comp = header.interchange.separators.component
        self._current: LevelAck | None = None  # the 2000A/B/C being read
        self._by_hl: dict[str, LevelAck] = {}
        self._last: dict[str, LevelAck] = {}  # level code → last one seen (when HL02 is missing)
        self._claim_parent: list[LevelAck | None] = []

    def _statuses(self, seg: list[str]) -> list[Status]:
        """STC01 and, when sent, STC10 and STC11: one date, action, amount and message for all."""
        date = d8(seg[2], "STC", 2) if el(seg, 2) else None
        action, charge, message = el(seg, 3), amount(seg, 4, required=False), el(seg, 12)
        out = []
        for pos in (1, 10, 11):
            if pos > 1 and not el(seg, pos):
                continue
            parts = el(seg, pos).split(self._comp)
            parts += [""] * (3 - len(parts))
            out.append(Status(parts[0], parts[1], parts[2], date, action, charge, pos, message))
        return out

    def _hl(self, seg: list[str]) -> None:
        self.level = el(seg, 3)
        hl_id, parent_id = el(seg, 1), el(seg, 2)
        info = LEVELS.get(self.level)
        if info is not None:
            self.loop = info["hl"]
            parent_code = {"21": "20", "19": "21"}.get(self.level)
            parent = self._by_hl.get(parent_id) or (self._last.get(parent_code) if parent_code else None)
            lvl = LevelAck(info["code"], info["loop"], hl_id, parent=parent)
            self.ack.levels.append(lvl)
            self._by_hl[hl_id] = self._last[self.level] = self._current = lvl
            return
        if self.level != "PT":
            raise StructureError(f"HL level {self.level or '?'} unknown in a 277CA", segment_id="HL",
                                 loop_id="2000", element_position=3, code="7")
        self.loop = "2000D"
        self._current = None
        self.ack.claims.append(ClaimAck())
        self._claim_parent.append(self._by_hl.get(parent_id) or self._last.get("19"))

    def _level_segment(self, lvl: LevelAck, tag: str, seg: list[str]) -> None:
        if tag == "NM1":
            lvl.entity, lvl.name, lvl.id_qualifier, lvl.id = el(seg, 1), el(seg, 3), el(seg, 8), el(seg, 9)
            if lvl.id_qualifier == "FI":
                lvl.tin = lvl.id
            if self.loop == "2000A":
                self.ack.source_entity, self.ack.source_name, self.ack.source_id = lvl.entity, lvl.name, lvl.id
        elif tag == "TRN":
            lvl.trace = el(seg, 2) or None
        elif tag == "STC":
            lvl.statuses += self._statuses(seg)
        elif tag == "QTY":
            q, v = el(seg, 1), amount(seg, 2, required=False)
            if q in ("90", "QA"):
                lvl.accepted_quantity = v
            elif q in ("AA", "QC"):
                lvl.rejected_quantity = v
        elif tag == "AMT":
            q, v = el(seg, 1), amount(seg, 2, required=False)
            if q == "YU":
                lvl.accepted_amount = v
            elif q == "YY":
                lvl.rejected_amount = v
        elif tag == "REF":
            if el(seg, 1) == "TJ" and el(seg, 2):
                lvl.tin = el(seg, 2)
        elif tag == "DTP":
            q, v = el(seg, 1), el(seg, 3)
            value = d8(v.split("-")[0], "DTP", 3) if v else None
            if self.loop == "2000A":
                if q == "050":
                    self.ack.receipt_date = value
                elif q == "009":
                    self.ack.process_date = value
        elif tag == "SVC":
            raise StructureError("SVC outside a claim (2200D)", segment_id="SVC", loop_id=self.loop, code="7")
        else:
            raise StructureError(f"{tag} not expected in a 277CA", segment_id=tag, loop_id=self.loop, code="2")

    def _bht(self, seg: list[str]) -> None:
        self.ack.reference = el(seg, 3)

    def feed(self, seg: list[str], position: int) -> None:
        tag = seg[0]
        if opening(seg, self.loop, on_bht=self._bht, on_hl=self._hl):
            return
        if self._current is not None:
            self._level_segment(self._current, tag, seg)
            return
        claim = self.ack.claims[-1]
        if tag == "NM1":
            claim.member_id = el(seg, 9) or None
        elif tag == "TRN":
            if self.loop == "2000D":
                claim.patient_control_number = el(seg, 2)
        elif tag == "STC":
            statuses = self._statuses(seg)
            if self.loop == "2220D":
                claim.lines[-1].statuses += statuses
            else:
                claim.statuses += statuses
        elif tag == "REF":
            q, v = el(seg, 1), el(seg, 2)
            if q == "1K":
                claim.payer_claim_control_number = v
            elif q == "D9":
                claim.clearinghouse_trace = v
            elif q == "FJ" and self.loop == "2220D":
                claim.lines[-1].line_control_number = v
        elif tag == "DTP":
            q, v = el(seg, 1), el(seg, 3)
            value = d8(v.split("-")[0], "DTP", 3) if v else None
            if self.loop == "2220D":
                claim.lines[-1].service_date = value
            elif q == "472":
                claim.service_date = value
        elif tag == "SVC":
            comp = el(seg, 1).split(self._comp)
            claim.lines.append(LineStatus(comp[1] if len(comp) > 1 else comp[0], comp[2:6],
                                          amount(seg, 2, required=False)))
            self.loop = "2220D"
        elif tag in ("QTY", "AMT"):
            raise StructureError(f"{tag} not used at the claim level", segment_id=tag, loop_id=self.loop, code="2")
        else:
            raise StructureError(f"{tag} not expected in a 277CA", segment_id=tag, loop_id=self.loop, code="2")

    def finish(self) -> Ack277:
        for n, c in enumerate(self.ack.claims):
            if not c.patient_control_number:
                raise StructureError(f"claim {n + 1} has no TRN (patient control number)", segment_id="TRN",
                                     loop_id="2200D", code="3")
        for lvl in self.ack.levels:
            lvl.batch_trace = _batch_trace(lvl)
        for c, provider in zip(self.ack.claims, self._claim_parent):
            if provider is not None:
                place_claim(c, provider)
        return self.ack


def _batch_trace(lvl: LevelAck | None) -> str | None:
    """The 2200B TRN02 at or above ``lvl``."""
    while lvl is not None:
        if lvl.loop == "2200B":
            return lvl.trace
        lvl = lvl.parent
    return None


def place_claim(c: ClaimAck, provider: LevelAck) -> None:
    """Record on a claim the billing provider (2000C) and batch (2000B) it sits under."""
    c.batch_trace = _batch_trace(provider)
    if provider.loop != "2200C":
        return
    c.billing_provider_qualifier = provider.id_qualifier or None
    c.billing_provider_id = provider.id or None
    c.billing_npi = provider.npi
    c.provider_trace = provider.trace
