"""Payer profiles (``data/profiles.json``): how units, modifiers, limits and edits differ by payer."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from fhir_mappings.tables import load_json


@dataclass(frozen=True)
class PayerProfile:
    name: str  # medicare | commercial | workers-comp (the base profile, used by the rule catalog)
    label: str
    unit_method: str
    modifier_order: tuple[str, ...]
    max_modifiers: int
    distinct_modifier: str
    assistant_modifiers: bool
    kx: bool
    ncci: bool
    requires_auth: bool
    requires_accident: bool
    not_separately_billable: frozenset[str]
    timely_filing_months: int | None
    timely_filing_days: int | None
    certifier_required: bool
    max_certification_days: int | None
    progress_report_treatment_days: int | None
    payer_id: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict, compare=False)

    def setting(self, key: str) -> Any:
        """A profile setting by data-file name (used by the rule catalog's ``when``)."""
        return getattr(self, key.replace("-", "_"))


def profile_names() -> list[str]:
    return list(load_json("profiles.json")["profiles"])


def _from_data(name: str, raw: dict[str, Any]) -> PayerProfile:
    tf = raw.get("timely_filing", {})
    poc = raw.get("plan_of_care", {})
    return PayerProfile(
        name=name,
        label=raw["label"],
        unit_method=raw["unit_method"],
        modifier_order=tuple(raw["modifier_order"]),
        max_modifiers=int(raw["max_modifiers"]),
        distinct_modifier=raw["distinct_modifier"],
        assistant_modifiers=bool(raw["assistant_modifiers"]),
        kx=bool(raw["kx"]),
        ncci=bool(raw["ncci"]),
        requires_auth=bool(raw["requires_auth"]),
        requires_accident=bool(raw.get("requires_accident", False)),
        not_separately_billable=frozenset(raw.get("not_separately_billable", ())),
        timely_filing_months=tf.get("months"),
        timely_filing_days=tf.get("days"),
        certifier_required=bool(poc.get("certifier_required", False)),
        max_certification_days=poc.get("max_certification_days"),
        progress_report_treatment_days=poc.get("progress_report_treatment_days"),
    )


@cache
def get_profile(name: str, payer_id: str | None = None) -> PayerProfile:
    """The named profile, adjusted by ``payer_overrides`` for ``payer_id`` when the data has one.

    Raises KeyError for an unknown name. Cached (the data file is read once per process, and
    every claim asks for its profile more than once); a profile is immutable.
    """
    data = load_json("profiles.json")
    if name not in data["profiles"]:
        raise KeyError(f"unknown payer profile {name!r}; known: {', '.join(data['profiles'])}")
    profile = _from_data(name, data["profiles"][name])
    override = data.get("payer_overrides", {}).get(payer_id or "")
    if override:
        changes = {k.replace("-", "_"): v for k, v in override.items() if k != "source"}
        profile = replace(profile, **changes, overrides=override)
    return replace(profile, payer_id=payer_id)


def select_profile_name(coverage: dict[str, Any] | None) -> str:
    """Profile name from ``Coverage.type`` codings (SOPT, v3 ActCode, claim filing indicator); else the default."""
    data = load_json("profiles.json")
    selection = data["selection"]
    if coverage:
        for coding in (coverage.get("type") or {}).get("coding", ()):
            hit = selection.get(coding.get("system", ""), {}).get(coding.get("code", ""))
            if hit:
                return hit
    return data["default"]
