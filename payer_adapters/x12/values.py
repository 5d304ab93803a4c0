"""Element-level parsing shared by the decoders: dates (D8/RD8), amounts (R), quantities.

Each parser raises :class:`DataElementError` naming the segment and element, never the value's
owner. Money is ``Decimal`` so balancing is exact.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from payer_adapters.x12.errors import DataElementError

_AMOUNT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_ZERO = Decimal(0)


def amount(seg: list[str], pos: int, *, required: bool = True) -> Decimal | None:
    """Element ``pos`` of ``seg`` as a Decimal (X12 type R)."""
    raw = seg[pos] if pos < len(seg) else ""
    if not raw:
        if required:
            raise DataElementError(f"{seg[0]}{pos:02d} amount is missing", segment_id=seg[0],
                                   element_position=pos, code="1")
        return None
    if not _AMOUNT.fullmatch(raw):
        raise DataElementError(f"{seg[0]}{pos:02d} is not a valid amount", segment_id=seg[0],
                               element_position=pos, code="6")
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - guarded by the regex
        raise DataElementError(f"{seg[0]}{pos:02d} is not a valid amount", segment_id=seg[0],
                               element_position=pos, code="6") from None


def amount_or_zero(seg: list[str], pos: int) -> Decimal:
    v = amount(seg, pos, required=False)
    return _ZERO if v is None else v


def d8(value: str, seg_id: str, pos: int, component: int | None = None) -> str:
    """CCYYMMDD → ISO ``YYYY-MM-DD``; raises on impossible dates (IK403 8)."""
    if len(value) != 8 or not value.isdigit():
        raise DataElementError(f"{seg_id}{pos:02d} is not a CCYYMMDD date", segment_id=seg_id,
                               element_position=pos, component_position=component, code="8")
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise DataElementError(f"{seg_id}{pos:02d} is not a valid calendar date", segment_id=seg_id,
                               element_position=pos, component_position=component, code="8") from None
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def date_or_period(qualifier: str, value: str, seg_id: str, pos: int) -> tuple[str, str]:
    """DTP/DTM value by format qualifier: D8 → (d, d); RD8 → (start, end)."""
    if qualifier == "RD8":
        a, _, b = value.partition("-")
        return d8(a, seg_id, pos), d8(b, seg_id, pos)
    d = d8(value, seg_id, pos)
    return d, d


def el(seg: list[str], pos: int) -> str:
    """Element ``pos`` or ``""`` when the segment is shorter."""
    return seg[pos] if pos < len(seg) else ""


def money(value: Decimal | None) -> float | None:
    """Decimal → JSON number for FHIR Money (two decimals kept exact where possible)."""
    if value is None:
        return None
    return float(value)
