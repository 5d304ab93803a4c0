"""Reference tables loaded once from ``fhir_mappings/data/*.json``.

Rules are data: codes, thresholds, pairs and profiles live in JSON files with their sources,
so a newcomer (or a billing lead) can change them without touching code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"
NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"


@cache
def load_json(name: str) -> Any:
    """Parse one data file (cached: the tables are read once per process)."""
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class CptCode:
    code: str
    label: str
    timed: bool
    kind: str  # evaluation | re-evaluation | treatment | modality
    disciplines: tuple[str, ...]

    @property
    def is_evaluation(self) -> bool:
        return self.kind in ("evaluation", "re-evaluation")


@dataclass(frozen=True)
class Discipline:
    code: str  # OT | PT | SLP
    label: str
    modifier: str
    assistant_modifier: str | None
    kx_bucket: str
    service_type: str
    therapist_taxonomy_prefixes: tuple[str, ...]
    assistant_taxonomy_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class NcciPair:
    column1: str
    column2: str
    modifier_indicator: str
    effective_from: date
    effective_to: date | None
    confirmed: bool
    source: str

    def active_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


@dataclass(frozen=True)
class ModifierInfo:
    code: str
    system: str
    category: str


@cache
def cpt_codes() -> dict[str, CptCode]:
    raw = load_json("cpt_codes.json")["codes"]
    return {
        code: CptCode(code, v["label"], v["timed"], v["kind"], tuple(v["disciplines"]))
        for code, v in raw.items()
    }


@cache
def disciplines() -> dict[str, Discipline]:
    raw = load_json("disciplines.json")["disciplines"]
    return {
        code: Discipline(
            code, v["label"], v["modifier"], v["assistant_modifier"], v["kx_bucket"], v["service_type"],
            tuple(v["therapist_taxonomy_prefixes"]), tuple(v["assistant_taxonomy_prefixes"]),
        )
        for code, v in raw.items()
    }


@cache
def discipline_category_codes() -> dict[tuple[str, str], str]:
    """(system, code) of a CarePlan.category coding -> discipline code."""
    raw = load_json("disciplines.json")["category_systems"]
    return {(system, code): disc for system, codes in raw.items() for code, disc in codes.items()}


def service_type_system() -> str:
    return load_json("disciplines.json")["service_type_system"]


@cache
def modifiers() -> dict[str, ModifierInfo]:
    raw = load_json("modifiers.json")
    systems = raw["systems"]
    return {
        code: ModifierInfo(code, systems[v["system"]], v["category"])
        for code, v in raw["modifiers"].items()
    }


def modifier_system(code: str) -> str:
    """Code system for a modifier; CPT modifiers are numeric, HCPCS level II ones alphanumeric."""
    info = modifiers().get(code)
    if info is not None:
        return info.system
    systems = load_json("modifiers.json")["systems"]
    return systems["cpt"] if code.isdigit() else systems["hcpcs"]


@cache
def functional_reporting() -> tuple[date, frozenset[str], frozenset[str]]:
    """(discontinued_from, FLR G-codes, severity modifiers) — MCPM ch.5 §10.6, [Noridian-FLR]."""
    raw = load_json("modifiers.json")["functional_reporting"]
    gcodes: set[str] = set()
    for low, high in raw["gcode_ranges"]:
        for n in range(int(low[1:]), int(high[1:]) + 1):
            gcodes.add(f"G{n:04d}")
    return date.fromisoformat(raw["discontinued_from"]), frozenset(gcodes), frozenset(raw["severity_modifiers"])


@cache
def ncci_pairs() -> tuple[NcciPair, ...]:
    raw = load_json("ncci_pairs.json")["pairs"]
    return tuple(
        NcciPair(
            p["column1"], p["column2"], p["modifier_indicator"], date.fromisoformat(p["effective_from"]),
            date.fromisoformat(p["effective_to"]) if p["effective_to"] else None, p["confirmed"], p["source"],
        )
        for p in raw
    )


@cache
def kx_thresholds() -> dict[int, dict[str, Decimal]]:
    """Year -> {bucket -> threshold}; BBA 2018 §50202 amounts from kx_thresholds.json."""
    raw = load_json("kx_thresholds.json")["years"]
    return {int(y): {b: Decimal(v[b]) for b in ("OT", "PT-SLP")} for y, v in raw.items()}


@cache
def kx_review_threshold() -> Decimal:
    return Decimal(load_json("kx_thresholds.json")["targeted_review_threshold"]["amount"])


@cache
def place_of_service() -> tuple[str, dict[str, str], dict[str, str]]:
    """(POS system, code -> label, Encounter.class code -> default POS)."""
    raw = load_json("place_of_service.json")
    return raw["system"], raw["codes"], raw["encounter_class_defaults"]["map"]


@cache
def certifier_taxonomy() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allowed prefixes, excluded prefixes) of NUCC taxonomies that may certify a therapy plan."""
    raw = load_json("disciplines.json")["certifier_taxonomy_prefixes"]
    return tuple(raw["allowed"]), tuple(raw["excluded"])


@cache
def msp_types() -> dict[str, str]:
    """Medicare Secondary Payer type (837P SBR05 insurance type code) -> what it means."""
    return {k: v for k, v in load_json("msp_types.json").items() if not k.startswith("_")}
