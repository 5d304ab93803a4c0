"""The demo practice's fee schedule for tests: its ChargeItemDefinitions (from the demo data,
the only place the sample fees live), as resources, as a ``ChargeMaster``, or written to a
tenant through the API for tests that build their records without the demo Bundle."""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from fhir_mappings import ChargeMaster

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "app" / "demo_data" / "practice.json"


@lru_cache(maxsize=1)
def _demo() -> tuple[dict[str, Any], ...]:
    bundle = json.loads(DEMO_BUNDLE.read_text())
    return tuple(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ChargeItemDefinition")


def demo_definitions(codes: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The demo practice's ChargeItemDefinitions (only those for ``codes`` when given)."""
    wanted = set(codes) if codes is not None else None
    return [copy.deepcopy(r) for r in _demo()
            if wanted is None or r["code"]["coding"][0]["code"] in wanted]


def demo_fee_schedule() -> ChargeMaster:
    return ChargeMaster.from_definitions(_demo())


def fee_bundle(definitions: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A transaction Bundle writing ``definitions`` (default: the demo schedule) by id."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"ChargeItemDefinition/{r['id']}"}}
        for r in (definitions if definitions is not None else demo_definitions())]}


async def load_fee_schedule(api: httpx.AsyncClient, definitions: Iterable[dict[str, Any]] | None = None) -> None:
    """Give the API client's tenant a fee schedule (default: the demo practice's)."""
    r = await api.post("/fhir", json=fee_bundle(definitions), headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
