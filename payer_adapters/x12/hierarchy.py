"""The opening of every hierarchical (HL) transaction set — 271, 276, 277, 277CA: one BHT before the
first HL, and nothing else until an HL opens a level. Each decoder hands its segments here first."""
from __future__ import annotations

from typing import Callable

from payer_adapters.x12.errors import StructureError

Segment = list[str]


def opening(seg: Segment, loop: str, *, on_bht: Callable[[Segment], None], on_hl: Callable[[Segment], None]) -> bool:
    """Take a BHT (only before the first HL) or an HL; refuse any other segment before the first
    HL. ``loop`` is the decoder's current loop, ``"HEADER"`` until an HL opened one. True when the
    segment was taken here, False when it belongs to the open level."""
    tag = seg[0]
    if tag == "BHT":
        if loop != "HEADER":
            raise StructureError("BHT after the first HL", segment_id="BHT", loop_id=loop, code="7")
        on_bht(seg)
        return True
    if tag == "HL":
        on_hl(seg)
        return True
    if loop == "HEADER":
        raise StructureError(f"{tag} before the first HL", segment_id=tag, loop_id="HEADER", code="7")
    return False
