"""Errors raised by the X12 codec.

One exception family, shaped after the levels a 999 reports on::

    X12Error                       any problem with an X12 file
    ├── X12SyntaxError             cannot be tokenised: no ISA, bad ISA length, truncated file
    ├── EnvelopeError              ISA/IEA, GS/GE, ST/SE counts or control numbers disagree
    ├── UnsupportedTransaction     ST01/GS08 pair this codec does not decode
    ├── StructureError             segment where its loop does not allow it, required segment missing
    ├── DataElementError           bad date, amount, code or length in one element (IK4 level)
    ├── BalanceError               835 amounts do not add up (reported, never silently fixed)
    └── EncodeError                the FHIR input cannot become a valid X12 file

Every error names *where* it happened (file segment index, position inside the transaction set
as counted by IK302, segment id, loop id, element position) and never carries member data, so
messages can be logged safely.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["interchange", "group", "transaction", "segment", "element"]


class X12Error(Exception):
    """Base class. ``str(err)`` is a one-line message with the location."""

    level: Level = "segment"
    #: 999 code for this kind of error (IK304 for segment, IK403 for element, IK502 for set,
    #: AK905 for group, TA1 note code for interchange). Informational.
    default_code: str = ""

    def __init__(
        self,
        message: str,
        *,
        segment_index: int | None = None,
        set_position: int | None = None,
        segment_id: str | None = None,
        loop_id: str | None = None,
        element_position: int | None = None,
        component_position: int | None = None,
        control_number: str | None = None,
        code: str | None = None,
        level: Level | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.segment_index = segment_index
        self.set_position = set_position
        self.segment_id = segment_id
        self.loop_id = loop_id
        self.element_position = element_position
        self.component_position = component_position
        self.control_number = control_number
        self.code = code or self.default_code
        if level is not None:
            self.level = level

    def location(self) -> str:
        parts: list[str] = []
        if self.segment_index is not None:
            parts.append(f"segment #{self.segment_index}")
        if self.segment_id:
            ele = ""
            if self.element_position is not None:
                ele = f"{self.element_position:02d}"
                if self.component_position is not None:
                    ele += f"-{self.component_position}"
            parts.append(f"{self.segment_id}{ele}")
        if self.loop_id:
            parts.append(f"loop {self.loop_id}")
        if self.control_number:
            parts.append(f"set {self.control_number}")
        if self.set_position is not None:
            parts.append(f"position {self.set_position} in set")
        return ", ".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return f"{self.message} ({loc})" if loc else self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "level": self.level,
            "message": self.message,
            "code": self.code,
            "segment_index": self.segment_index,
            "set_position": self.set_position,
            "segment_id": self.segment_id,
            "loop_id": self.loop_id,
            "element_position": self.element_position,
            "component_position": self.component_position,
            "control_number": self.control_number,
        }

    def fhir_expression(self) -> list[str]:
        """X12 location in the form ``2400/SV1[26]/SV103`` for ``OperationOutcome.issue.expression``."""
        path = []
        if self.loop_id:
            path.append(self.loop_id)
        if self.segment_id:
            seg = self.segment_id
            pos = self.set_position or self.segment_index
            if pos is not None:
                seg += f"[{pos}]"
            path.append(seg)
            if self.element_position is not None:
                e = f"{self.segment_id}{self.element_position:02d}"
                if self.component_position is not None:
                    e += f"-{self.component_position}"
                path.append(e)
        return ["/".join(path)] if path else []


class X12SyntaxError(X12Error):
    level = "interchange"
    default_code = "023"  # TA1: premature end of file / invalid interchange content


class EnvelopeError(X12Error):
    level = "transaction"
    default_code = "4"  # IK502 4: number of included segments does not match actual count


class UnsupportedTransaction(X12Error):
    level = "transaction"
    default_code = "1"  # IK502 1: transaction set not supported


class StructureError(X12Error):
    level = "segment"
    default_code = "2"  # IK304 2: unexpected segment


class DataElementError(X12Error):
    level = "element"
    default_code = "7"  # IK403 7: invalid code value (8 = invalid date, 6 = invalid character)


class BalanceError(X12Error):
    level = "segment"
    default_code = "BAL"


class EncodeError(X12Error):
    level = "transaction"
    default_code = "ENC"


@dataclass
class ErrorList(Exception):
    """Several errors found at once (validation); ``errors[0]`` is the first by position."""

    errors: list[X12Error] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)
