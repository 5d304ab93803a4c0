"""999 005010X231A1 → per-transaction-set acknowledgment records (``fhir_999`` maps them to FHIR).

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

from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.values import el


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


__all__ = ["Ack999", "SetAck", "SegmentNote", "ElementNote", "Decoder999"]
