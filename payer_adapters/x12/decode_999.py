"""999 005010X231A1 → per-transaction-set acknowledgments → OperationOutcome per acknowledged set.

Loop tree::

    ST
    AK1                           acknowledged group (GS01, GS06, GS08)
    2000  AK2                     one acknowledged transaction set (ST01, ST02, ST03)
      2100  IK3 CTX               segment in error (id, position in set, loop, code) + context
        2110 IK4 CTX              element in error (position[:component], element ref, code, bad value)
      IK5                         set result: A / E / R (+ error codes)
    AK9                           group result and counts
    SE
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from payer_adapters.x12 import codes as C
from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.fhir_out import entry
from payer_adapters.x12.resources import PCN
from payer_adapters.x12.values import el

ACK_SET_EXT = "https://therabridge.dev/fhir/StructureDefinition/x12-acknowledged-set"
PCN_EXT = "https://therabridge.dev/fhir/StructureDefinition/x12-patient-control-number"


@dataclass(slots=True)
class ElementNote:
    position: int
    component: int | None
    element_reference: str
    code: str
    bad_value: str  # as sent by the receiver; may be member data — never log it


@dataclass(slots=True)
class SegmentNote:
    segment_id: str
    position: int | None
    loop_id: str
    code: str
    context: list[str] = field(default_factory=list)  # CTX01 values, e.g. "CLM01:PCN1"
    elements: list[ElementNote] = field(default_factory=list)

    @property
    def patient_control_number(self) -> str | None:
        for ctx in self.context:
            name, _, value = ctx.partition(":")
            if name == "CLM01" and value:
                return value
        return None


@dataclass(slots=True)
class SetAck:
    """One AK2 … IK5: the acknowledgment of one of our transaction sets."""

    transaction: str  # AK201
    control_number: str  # AK202 = our ST02
    version: str
    status: str = ""  # IK501: A accepted, E accepted with errors, R rejected (+ M, W, X)
    set_errors: list[str] = field(default_factory=list)  # IK502-IK506
    segments: list[SegmentNote] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status in ("A", "E")

    @property
    def patient_control_numbers(self) -> list[str]:
        return [p for p in (s.patient_control_number for s in self.segments) if p]


@dataclass
class Ack999:
    header: SetHeader
    group_functional_id: str = ""  # AK101
    group_control_number: str = ""  # AK102 = our GS06
    group_version: str = ""
    sets: list[SetAck] = field(default_factory=list)
    group_status: str = ""  # AK901
    counts: tuple[int, int, int] = (0, 0, 0)  # AK902-AK904: included, received, accepted

    def to_fhir(self, claims: Any = None) -> list[dict[str, Any]]:
        return [entry(set_to_outcome(self, s), *set_ack_identity(self, s)) for s in self.sets]


def set_ack_identity(ack: Ack999, s: SetAck) -> tuple[str, ...]:
    """What identifies the acknowledgment of one of our sets across deliveries: who sent the 999
    (ISA05/06, GS02), the group and set it acknowledges (AK1, AK2) and what it says (IK3/IK4/IK5),
    never the 999's own envelope control numbers."""
    isa = ack.header.interchange
    notes = [f"{n.segment_id}:{n.position}:{n.loop_id}:{n.code}:{','.join(n.context)}:"
             + ",".join(f"{e.position}.{e.component}:{e.element_reference}:{e.code}" for e in n.elements)
             for n in s.segments]
    return ("999", isa.sender_qualifier, isa.sender_id, ack.header.group.sender, ack.group_functional_id,
            ack.group_control_number, ack.group_version, s.transaction, s.control_number, s.version, s.status,
            ",".join(s.set_errors), *notes)


class Decoder999:
    def __init__(self, header: SetHeader) -> None:
        self.ack = Ack999(header)
        self.loop = "START"
        self._comp = header.interchange.separators.component

    def feed(self, seg: list[str], position: int) -> None:
        tag, loop = seg[0], self.loop
        if tag == "AK1" and loop == "START":
            self.ack.group_functional_id, self.ack.group_control_number = el(seg, 1), el(seg, 2)
            self.ack.group_version = el(seg, 3)
            self.loop = "HEADER"
        elif tag == "AK2" and loop in ("HEADER", "IK5"):
            self.ack.sets.append(SetAck(el(seg, 1), el(seg, 2), el(seg, 3)))
            self.loop = "2000"
        elif tag == "IK3" and loop in ("2000", "2100", "2110"):
            pos = el(seg, 2)
            self.ack.sets[-1].segments.append(
                SegmentNote(el(seg, 1), int(pos) if pos.isdigit() else None, el(seg, 3), el(seg, 4)))
            self.loop = "2100"
        elif tag == "CTX" and loop in ("2100", "2110"):
            note = self.ack.sets[-1].segments[-1]
            note.context.append(el(seg, 1).replace(self._comp, ":"))
        elif tag == "IK4" and loop in ("2100", "2110"):
            pos, _, comp = el(seg, 1).partition(self._comp)
            self.ack.sets[-1].segments[-1].elements.append(ElementNote(
                int(pos) if pos.isdigit() else 0, int(comp) if comp.isdigit() else None,
                el(seg, 2), el(seg, 3), el(seg, 4)))
            self.loop = "2110"
        elif tag == "IK5" and loop in ("2000", "2100", "2110"):
            s = self.ack.sets[-1]
            s.status = el(seg, 1)
            s.set_errors = [e for e in seg[2:] if e]
            self.loop = "IK5"
        elif tag == "AK9" and loop in ("HEADER", "IK5"):
            self.ack.group_status = el(seg, 1)
            nums = [int(x) if x.isdigit() else 0 for x in (el(seg, 2), el(seg, 3), el(seg, 4))]
            self.ack.counts = (nums[0], nums[1], nums[2])
            self.loop = "AK9"
        else:
            expected = {"START": "AK1", "HEADER": "AK2 or AK9", "2000": "IK3 or IK5", "2100": "CTX, IK4, IK3 or IK5",
                        "2110": "CTX, IK4, IK3 or IK5", "IK5": "AK2 or AK9", "AK9": "SE"}[loop]
            raise StructureError(f"{tag} not expected here (expected {expected})", segment_id=tag,
                                 loop_id=loop if loop not in ("START", "IK5", "AK9") else "HEADER", code="2")

    def finish(self) -> Ack999:
        if self.loop != "AK9":
            raise StructureError("999 ends without AK9", segment_id="AK9", loop_id="HEADER", code="3")
        return self.ack


def set_to_outcome(ack: Ack999, s: SetAck) -> dict[str, Any]:
    acks = C.table("ack_codes")
    status_text = acks["ack"].get(s.status, s.status)
    issues: list[dict[str, Any]] = [{
        "severity": "information" if s.status == "A" else ("warning" if s.status == "E" else "error"),
        "code": "informational" if s.status in ("A", "E") else "processing",
        "details": {"coding": [{"system": "https://x12.org/codes/ik5-ack", "code": s.status, "display": status_text}],
                    "text": f"{s.transaction} set {s.control_number} in group {ack.group_control_number}: {status_text}"},
    }]
    for code in s.set_errors:
        issues.append({"severity": "error", "code": "structure",
                       "details": {"coding": [{"system": "https://x12.org/codes/ik5-error", "code": code}],
                                   "text": acks["set_errors"].get(code, code)}})
    severity = "warning" if s.status == "E" else "error"
    for n in s.segments:
        base_text = acks["segment_errors"].get(n.code, n.code)
        pcn = n.patient_control_number
        ext = [{"url": PCN_EXT, "valueIdentifier": {"system": PCN, "value": pcn}}] if pcn else []
        where = f"{n.loop_id or '?'}/{n.segment_id}[{n.position}]"
        if not n.elements:
            issues.append({"severity": severity, "code": "structure", **({"extension": ext} if ext else {}),
                           "details": {"coding": [{"system": "https://x12.org/codes/ik3-error", "code": n.code}],
                                       "text": f"{n.segment_id} at position {n.position} in loop {n.loop_id or '?'}: {base_text}"},
                           "expression": [where]})
        for e in n.elements:
            ele = f"{n.segment_id}{e.position:02d}" + (f"-{e.component}" if e.component else "")
            text = acks["element_errors"].get(e.code, e.code)
            issues.append({"severity": severity, "code": "value", **({"extension": ext} if ext else {}),
                           "details": {"coding": [{"system": "https://x12.org/codes/ik4-error", "code": e.code}],
                                       "text": f"{ele} (element {e.element_reference}) at position {n.position} "
                                               f"in loop {n.loop_id or '?'}: {text}"},
                           "expression": [f"{where}/{ele}"]})
    return {"resourceType": "OperationOutcome",
            "extension": [{"url": ACK_SET_EXT,
                           "valueString": f"{ack.group_functional_id}/{ack.group_control_number}/{s.control_number}/{s.status}"}],
            "issue": issues}


__all__ = ["Ack999", "SetAck", "SegmentNote", "ElementNote", "Decoder999"]
