"""Code tables from ``data/*.json``, loaded once, plus the FHIR systems the decoders write."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

# Code systems used in decoded FHIR resources.
CARC_SYSTEM = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC_SYSTEM = "https://x12.org/codes/remittance-advice-remark-codes"
GROUP_SYSTEM = "https://x12.org/codes/claim-adjustment-group-codes"
STC_CATEGORY_SYSTEM = "https://x12.org/codes/claim-status-category-codes"
STC_STATUS_SYSTEM = "https://x12.org/codes/claim-status-codes"
ENTITY_SYSTEM = "https://x12.org/codes/entity-identifier-codes"
SERVICE_TYPE_SYSTEM = "https://x12.org/codes/service-type-codes"
CLP_STATUS_SYSTEM = "https://therabridge.dev/fhir/CodeSystem/x12-835-claim-status"
PLB_SYSTEM = "https://therabridge.dev/fhir/CodeSystem/x12-plb-reason"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
OUR_ADJUDICATION = "https://therabridge.dev/fhir/CodeSystem/adjudication"
PAYER_CLAIM_NUMBER = "https://therabridge.dev/fhir/sid/payer-claim-control-number"
MEMBER_ID = "https://therabridge.dev/fhir/sid/member-id"
TRACE_SYSTEM = "https://therabridge.dev/fhir/sid/payment-trace-number"
X12_LOCATION = "https://therabridge.dev/fhir/CodeSystem/x12-error"
CLAIM_STATUS_EXT = "https://therabridge.dev/fhir/StructureDefinition/x12-claim-status"


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
