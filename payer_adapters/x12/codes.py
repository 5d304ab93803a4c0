"""Code tables from ``data/*.json``, loaded once, plus the standard code systems (X12, HL7) the
FHIR mappers write. The product's own systems are named in ``fhir_mappings.vocabulary``."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

# Standard code systems of decoded FHIR resources.
CARC_SYSTEM = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC_SYSTEM = "https://x12.org/codes/remittance-advice-remark-codes"
GROUP_SYSTEM = "https://x12.org/codes/claim-adjustment-group-codes"
STC_CATEGORY_SYSTEM = "https://x12.org/codes/claim-status-category-codes"
STC_STATUS_SYSTEM = "https://x12.org/codes/claim-status-codes"
ENTITY_SYSTEM = "https://x12.org/codes/entity-identifier-codes"
SERVICE_TYPE_SYSTEM = "https://x12.org/codes/service-type-codes"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"


@lru_cache(maxsize=None)
def table(name: str) -> dict[str, Any]:
    """The JSON table ``data/<name>.json`` without its ``_about`` keys."""
    data = json.loads((DATA / f"{name}.json").read_text("utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def describe(name: str, code: str) -> str | None:
    value = table(name).get(code)
    if isinstance(value, dict):
        return value.get("text")
    return value
