"""Prove decoded output is valid FHIR R4 (validated with fhir.resources.R4B models)."""
from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle


def assert_valid_bundle(bundle: dict[str, Any]) -> None:
    Bundle.model_validate(bundle)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def adjudication(entries: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    out = []
    for a in entries:
        codes = [c["code"] for c in a["category"]["coding"]]
        if code in codes:
            out.append(a)
    return out
