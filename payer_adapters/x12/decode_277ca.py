"""277CA 005010X214 → per-claim acknowledgment records → ClaimResponse.

Loop tree::

    ST BHT
    2000A HL*20  2100A NM1 (payer/clearinghouse)  2200A TRN DTP*050 DTP*009
    2000B HL*21  2100B NM1*41 (submitter)         2200B TRN STC QTY AMT
    2000C HL*19  2100C NM1*85 (billing provider)  2200C TRN STC QTY AMT
    2000D HL*PT  2100D NM1*QC (patient)           2200D TRN*2 (= our CLM01) STC+ REF*1K REF*D9 DTP*472
                                                  2220D SVC STC+ REF*FJ (line control) DTP*472
    SE
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from payer_adapters.x12 import codes as C
from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.fhir_out import concept, entry, reference_by_identifier
from payer_adapters.x12.resources import LINE_CONTROL, NPI, PAYER_ID, PCN, extension
from payer_adapters.x12.values import amount, d8, el

_ERROR_CATEGORIES = {k for k, v in C.table("stc_categories").items() if v.get("outcome") == "error"}


@dataclass(slots=True)
class Status:
    """One STC: category (STC01-1), status (STC01-2), entity (STC01-3), action (STC03 WQ/U)."""

    category: str
    code: str
    entity: str
    date: str | None
    action: str
    amount: Decimal | None

    @property
    def rejected(self) -> bool:
        return self.action == "U" or self.category in _ERROR_CATEGORIES


@dataclass(slots=True)
class LineStatus:
    code: str
    modifiers: list[str]
    charge: Decimal | None
    statuses: list[Status] = field(default_factory=list)
    line_control_number: str | None = None  # REF*FJ
    service_date: str | None = None


@dataclass(slots=True)
class ClaimAck:
    patient_control_number: str = ""  # 2200D TRN02 = our CLM01
    statuses: list[Status] = field(default_factory=list)
    payer_claim_control_number: str | None = None  # REF*1K
    clearinghouse_trace: str | None = None  # REF*D9
    member_id: str | None = None
    service_date: str | None = None
    lines: list[LineStatus] = field(default_factory=list)
    billing_npi: str | None = None

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
    batch_statuses: list[Status] = field(default_factory=list)  # 2200B / 2200C
    claims: list[ClaimAck] = field(default_factory=list)

    def to_fhir(self, claims: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        claims = claims or {}
        return [entry(claim_ack_to_fhir(self, c, claims.get(c.patient_control_number)),
                      self.header.interchange.control_number, self.header.control_number, n, c.patient_control_number)
                for n, c in enumerate(self.claims)]


class Decoder277CA:
    def __init__(self, header: SetHeader) -> None:
        self.ack = Ack277(header)
        self.level = ""  # HL03 of the current HL
        self.loop = "HEADER"
        self._comp = header.interchange.separators.component
        self._npi: str | None = None

    def _status(self, seg: list[str]) -> Status:
        parts = el(seg, 1).split(self._comp)
        parts += [""] * (3 - len(parts))
        date = d8(seg[2], "STC", 2) if el(seg, 2) else None
        return Status(parts[0], parts[1], parts[2], date, el(seg, 3), amount(seg, 4, required=False))

    def feed(self, seg: list[str], position: int) -> None:
        tag = seg[0]
        if tag == "BHT":
            if self.loop != "HEADER":
                raise StructureError("BHT after the first HL", segment_id="BHT", loop_id=self.loop, code="7")
            self.ack.reference = el(seg, 3)
            return
        if tag == "HL":
            self.level = el(seg, 3)
            self.loop = {"20": "2000A", "21": "2000B", "19": "2000C", "PT": "2000D"}.get(self.level, "")
            if not self.loop:
                raise StructureError(f"HL level {self.level or '?'} unknown in a 277CA", segment_id="HL",
                                     loop_id="2000", element_position=3, code="7")
            if self.loop == "2000D":
                self.ack.claims.append(ClaimAck())
            return
        if self.loop == "HEADER":
            raise StructureError(f"{tag} before the first HL", segment_id=tag, loop_id="HEADER", code="7")
        claim = self.ack.claims[-1] if self.loop in ("2000D", "2220D") else None
        if tag == "NM1":
            if self.loop == "2000A":
                self.ack.source_entity, self.ack.source_name, self.ack.source_id = el(seg, 1), el(seg, 3), el(seg, 9)
            elif self.loop == "2000C":
                self._npi = el(seg, 9) if el(seg, 8) == "XX" else None
            elif claim is not None:
                claim.member_id = el(seg, 9) or None
                claim.billing_npi = self._npi
        elif tag == "TRN":
            if claim is not None and self.loop == "2000D":
                claim.patient_control_number = el(seg, 2)
        elif tag == "STC":
            st = self._status(seg)
            if self.loop == "2220D":
                claim.lines[-1].statuses.append(st)  # type: ignore[union-attr]
            elif claim is not None:
                claim.statuses.append(st)
            else:
                self.ack.batch_statuses.append(st)
        elif tag == "REF":
            if claim is not None:
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
            if self.loop == "2000A":
                if q == "050":
                    self.ack.receipt_date = value
                elif q == "009":
                    self.ack.process_date = value
            elif self.loop == "2220D":
                claim.lines[-1].service_date = value  # type: ignore[union-attr]
            elif claim is not None and q == "472":
                claim.service_date = value
        elif tag == "SVC":
            if claim is None:
                raise StructureError("SVC outside a claim (2200D)", segment_id="SVC", loop_id=self.loop, code="7")
            comp = el(seg, 1).split(self._comp)
            claim.lines.append(LineStatus(comp[1] if len(comp) > 1 else comp[0], comp[2:6],
                                          amount(seg, 2, required=False)))
            self.loop = "2220D"
        elif tag in ("QTY", "AMT"):
            if claim is not None:
                raise StructureError(f"{tag} not used at the claim level", segment_id=tag, loop_id=self.loop, code="2")
        else:
            raise StructureError(f"{tag} not expected in a 277CA", segment_id=tag, loop_id=self.loop, code="2")

    def finish(self) -> Ack277:
        for n, c in enumerate(self.ack.claims):
            if not c.patient_control_number:
                raise StructureError(f"claim {n + 1} has no TRN (patient control number)", segment_id="TRN",
                                     loop_id="2200D", code="3")
        return self.ack


def _status_text(s: Status) -> str:
    cat = C.describe("stc_categories", s.category) or s.category
    text = f"{s.category}:{s.code}{':' + s.entity if s.entity else ''} {cat}"
    if s.code:
        text += f" — {C.describe('stc_status', s.code) or 'status ' + s.code}"
    if s.entity:
        text += f" ({C.describe('entity_codes', s.entity) or s.entity})"
    return text


def _status_concept(s: Status) -> dict[str, Any]:
    coding = [{"system": C.STC_CATEGORY_SYSTEM, "code": s.category,
               **({"display": C.describe("stc_categories", s.category)} if C.describe("stc_categories", s.category) else {})}]
    if s.code:
        coding.append({"system": C.STC_STATUS_SYSTEM, "code": s.code,
                       **({"display": C.describe("stc_status", s.code)} if C.describe("stc_status", s.code) else {})})
    if s.entity:
        coding.append({"system": C.ENTITY_SYSTEM, "code": s.entity})
    return {"coding": coding, "text": _status_text(s)}


def claim_ack_to_fhir(ack: Ack277, c: ClaimAck, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    created = ack.process_date or ack.receipt_date or next((s.date for s in c.statuses if s.date), None) \
        or f"{ack.header.group.date[:4]}-{ack.header.group.date[4:6]}-{ack.header.group.date[6:8]}"
    res: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "claim",
        "patient": (claim or {}).get("patient") or reference_by_identifier("Patient", C.MEMBER_ID, c.member_id),
        "created": created,
        "insurer": (claim or {}).get("insurer") or reference_by_identifier(
            "Organization", PAYER_ID, ack.source_id, ack.source_name or None),
        "requestor": reference_by_identifier("Organization", NPI, c.billing_npi),
        "request": {"type": "Claim", "identifier": {"system": PCN, "value": c.patient_control_number},
                    **({"reference": f"Claim/{claim['id']}"} if claim and claim.get("id") else {})},
        "outcome": c.outcome,
        "disposition": "; ".join(_status_text(s) for s in c.statuses),
        "processNote": [{"number": n, "type": "display", "text": _status_text(s)}
                        for n, s in enumerate(c.statuses, start=1)],
    }
    if c.payer_claim_control_number:
        res["identifier"] = [{"system": C.PAYER_CLAIM_NUMBER, "value": c.payer_claim_control_number}]
    if c.outcome == "error":
        res["error"] = [{"code": _status_concept(s)} for s in c.statuses if s.rejected]
    seqs = _line_sequences(c, claim)
    items = []
    for line, seq in zip(c.lines, seqs):
        adjudication = [{"category": _status_concept(s)} for s in line.statuses] or [
            {"category": concept(C.STC_CATEGORY_SYSTEM, "A1")}]
        item: dict[str, Any] = {"itemSequence": seq, "adjudication": adjudication}
        if line.line_control_number:
            item["extension"] = [{"url": LINE_CONTROL, "valueString": line.line_control_number}]
        items.append(item)
        if any(s.rejected for s in line.statuses):
            res.setdefault("error", []).extend(
                {"itemSequence": seq, "code": _status_concept(s)} for s in line.statuses if s.rejected)
    if items:
        res["item"] = items
    return res


def _line_sequences(c: ClaimAck, claim: dict[str, Any] | None) -> list[int]:
    by_control = {}
    for i in (claim or {}).get("item") or []:
        ctl = extension(i, LINE_CONTROL)
        if ctl:
            by_control[ctl] = i["sequence"]
    return [by_control.get(line.line_control_number or "", n) for n, line in enumerate(c.lines, start=1)]
