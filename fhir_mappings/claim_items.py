"""The Claim's items read once per scrub: code, date, modifiers and quantity of each line."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from fhir_mappings.resolve import day_of
from fhir_mappings.tables import CPT_SYSTEM


@dataclass(frozen=True)
class Item:
    """One Claim.item as the checks need it (first CPT coding, first coding of each modifier)."""

    index: int
    raw: dict[str, Any]
    code: str | None
    day: date | None
    modifiers: tuple[str, ...]
    quantity: Decimal

    @property
    def path(self) -> str:
        return f"Claim.item[{self.index}]"


def read_items(claim: dict[str, Any]) -> list[Item]:
    out = []
    for i, it in enumerate(claim.get("item", ())):
        code = next((c.get("code") for c in (it.get("productOrService") or {}).get("coding", ())
                     if c.get("system") == CPT_SYSTEM), None)
        mods = tuple(c.get("code") for m in it.get("modifier", ()) for c in m.get("coding", ())[:1])
        qty = Decimal(str((it.get("quantity") or {}).get("value", 1)))
        out.append(Item(i, it, code, day_of(it.get("servicedDate")), mods, qty))
    return out


