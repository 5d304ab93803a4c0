"""The KPIs as FHIR ``Measure`` resources, built from ``data/measures.json``.

The server publishes them read-only under stable ids; nothing stores them, so every tenant sees
the same definitions and a change to a definition is a change to this data file (and its
``version``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fhir_mappings.vocabulary import BASE

DATA = Path(__file__).parent / "data" / "measures.json"
MEASURE_BASE = f"{BASE}/Measure"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
SCORING_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-scoring"
STRATIFIER_SYSTEM = f"{BASE}/CodeSystem/measure-stratifier"
GROUP_SYSTEM = f"{BASE}/CodeSystem/measure-group"
#: Extension on a Measure naming the code that computes it (module#function).
COMPUTATION = f"{BASE}/StructureDefinition/measure-computation"
#: Extension on a MeasureReport population: the money the population stands for (dollar KPIs).
POPULATION_AMOUNT = f"{BASE}/StructureDefinition/measure-population-amount"
#: Language of our population criteria: a predicate over the claim facts tables, in words.
CRITERIA_LANGUAGE = "text/x-therabridge-claim-facts"


@lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def ids() -> list[str]:
    return [m["id"] for m in data()["measures"]]


def spec(measure_id: str) -> dict[str, Any] | None:
    return next((m for m in data()["measures"] if m["id"] == measure_id), None)


def canonical(measure_id: str) -> str:
    return f"{MEASURE_BASE}/{measure_id}"


def _population(code: str, text: str) -> dict[str, Any]:
    return {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}, "description": text,
            "criteria": {"language": CRITERIA_LANGUAGE, "expression": text}}


def _stratifiers() -> list[dict[str, Any]]:
    return [{"code": {"coding": [{"system": STRATIFIER_SYSTEM, "code": s["code"]}], "text": s["display"]},
             "description": s["display"],
             "criteria": {"language": CRITERIA_LANGUAGE, "expression": s["criteria"]}}
            for s in data()["stratifiers"]]


def group_codes(m: dict[str, Any]) -> list[str]:
    return m.get("groups") or ["count"]


@lru_cache(maxsize=None)
def _measure(measure_id: str) -> str:
    m = spec(measure_id)
    assert m is not None
    groups = [{"code": {"coding": [{"system": GROUP_SYSTEM, "code": g}]},
               "population": [_population(code, text) for code, text in m["populations"]],
               "stratifier": _stratifiers()} for g in group_codes(m)]
    if len(groups) == 1:
        del groups[0]["code"]
    resource: dict[str, Any] = {
        "resourceType": "Measure", "id": m["id"],
        "meta": {"versionId": data()["version"], "lastUpdated": data()["date"] + "T00:00:00Z"},
        "extension": [{"url": COMPUTATION, "valueString": f"app/measures/queries.py#{m['computation']}"}],
        "url": canonical(m["id"]), "version": data()["version"], "name": m["id"].replace("-", "_").upper(),
        "title": m["title"], "status": "active", "experimental": False, "date": data()["date"],
        "publisher": "TheraBridge", "description": m["description"],
        "useContext": [{"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                                 "code": "focus"}, "valueCodeableConcept": {"text": "revenue cycle"}}],
        "purpose": f"Revenue-cycle KPI. Period anchor: {m['anchor']}."
                   + (f" Follows HFMA MAP Key: {m['hfma']}." if m.get("hfma") else " No HFMA MAP Key."),
        "scoring": {"coding": [{"system": SCORING_SYSTEM, "code": m["scoring"]}]},
        "rationale": m["rationale"],
        "definition": [m["definition"]],
        "improvementNotation": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                                           "code": "decrease" if m["id"] in _LOWER_IS_BETTER else "increase"}]},
        "group": groups,
    }
    return json.dumps(resource)


_LOWER_IS_BETTER = frozenset({"denial-rate", "days-in-ar", "aged-ar-over-90", "days-to-payment"})


def measure(measure_id: str) -> dict[str, Any] | None:
    """The Measure resource with this id, or None."""
    return json.loads(_measure(measure_id)) if spec(measure_id) is not None else None


def measures() -> list[dict[str, Any]]:
    return [json.loads(_measure(i)) for i in ids()]
