"""Practice charge master: the practice's fee per code (Claim.item.unitPrice) and an expected
allowed amount per unit used to estimate the KX year-to-date total when no EOB is on file."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_mappings.tables import load_json


@dataclass(frozen=True)
class ChargeMaster:
    currency: str
    fees: dict[str, Decimal]
    expected_allowed: dict[str, Decimal]

    @classmethod
    def from_data(cls, raw: dict[str, Any]) -> "ChargeMaster":
        """Build from a dict shaped like ``data/charge_master.json``."""
        fees = {code: Decimal(v["fee"]) for code, v in raw["fees"].items()}
        allowed = {code: Decimal(v.get("expected_allowed", v["fee"])) for code, v in raw["fees"].items()}
        return cls(raw.get("currency", "USD"), fees, allowed)

    @classmethod
    def sample(cls) -> "ChargeMaster":
        """The sample charge master shipped in ``data/charge_master.json`` (for demos and tests)."""
        return _SAMPLE

    def fee(self, code: str) -> Decimal | None:
        return self.fees.get(code)


_SAMPLE = ChargeMaster.from_data(load_json("charge_master.json"))
