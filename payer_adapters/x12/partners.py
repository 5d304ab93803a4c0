"""Trading-partner settings: who we are and who they are in ISA/GS, and how files are shaped.

Loaded from ``data/partners.json`` (a ``default`` entry plus named partners such as ``sandbox``);
a named partner inherits every field it does not set from ``default``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from payer_adapters.x12.segments import Separators

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class TradingPartner:
    name: str
    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06 (padded to 15)
    receiver_qualifier: str  # ISA07
    receiver_id: str  # ISA08
    application_sender: str  # GS02
    application_receiver: str  # GS03
    usage_indicator: str = "T"  # ISA15: T test, P production
    ack_requested: bool = False  # ISA14: TA1 wanted
    separators: Separators = field(default_factory=Separators)
    newline_after_segment: bool = False
    #: 1000A submitter contact (PER*IC) and 1000B receiver name
    submitter_name: str = ""
    submitter_contact_name: str = "BILLING OFFICE"
    submitter_phone: str = ""
    receiver_name: str = ""
    #: 2100B information receiver / 270 TRN03 originator id (``9`` + 9 chars)
    trace_originator: str = ""

    def __post_init__(self) -> None:
        if self.usage_indicator not in ("T", "P"):
            raise ValueError("usage_indicator must be T or P")
        for name in ("sender_id", "receiver_id"):
            if not 1 <= len(getattr(self, name)) <= 15:
                raise ValueError(f"{name} must be 1 to 15 characters")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> "TradingPartner":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k != "separators"}
        seps = data.get("separators") or {}
        return cls(name=name, separators=Separators(**seps), **values)


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text("utf-8"))


def load_partner(name: str = "default", path: str | Path | None = None) -> TradingPartner:
    """The named partner from ``partners.json``, defaults filled from its ``default`` entry."""
    table = _load(str(path or DATA / "partners.json"))
    if name not in table:
        raise KeyError(f"unknown trading partner {name!r}; known: {sorted(table)}")
    merged = {**table.get("default", {}), **table[name]}
    return TradingPartner.from_dict(name, merged)
