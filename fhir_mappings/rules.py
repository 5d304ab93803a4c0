"""The scrub rule catalog: ids, severities, profiles, summaries and sources from ``data/rules.json``,
each bound to the check function registered for it in ``checks.py`` (``checks.CHECKS``).

A rule without a registered check reports only the findings the billing plan raised under its
id (``plan.py``); ``checks.py`` adds the checks that read the Claim itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from typing import Any, Literal

from fhir_mappings.checks import CHECKS, Check
from fhir_mappings.profiles import PayerProfile
from fhir_mappings.tables import load_json


@dataclass(frozen=True)
class ScrubRule:
    id: str
    severity: Literal["error", "warning"]
    profiles: tuple[str, ...]
    issue_code: str
    summary: str
    source: str
    when: dict[str, Any] = field(default_factory=dict)
    check: Check | None = None
    effective: date | None = None  # the first date of service the rule applies to (None: always)

    def applies_to(self, profile: PayerProfile) -> bool:
        """Runs for the profile's base name, and only where the profile has the ``when`` settings."""
        if profile.name not in self.profiles:
            return False
        return all(profile.setting(k) in (v if isinstance(v, list) else [v]) for k, v in self.when.items())


@cache
def catalog() -> tuple[ScrubRule, ...]:
    """All rules in catalog order (the order issues are reported in)."""
    return tuple(
        ScrubRule(r["id"], r["severity"], tuple(r["profiles"]), r["issue_code"], r["summary"], r["source"],
                  r.get("when", {}), CHECKS.get(r["id"]),
                  date.fromisoformat(r["effective"]) if r.get("effective") else None)
        for r in load_json("rules.json")["rules"]
    )


@lru_cache(maxsize=64)
def rules_for(profile: PayerProfile) -> tuple[ScrubRule, ...]:
    """The rules that run for ``profile``, in catalog order (cached per profile value)."""
    return tuple(r for r in catalog() if r.applies_to(profile))


@cache
def rules_by_id() -> dict[str, ScrubRule]:
    return {r.id: r for r in catalog()}


def registered_check_ids() -> set[str]:
    """The rule ids that have a check reading the Claim (the others are raised by the plan)."""
    return set(CHECKS)


def catalog_markdown() -> str:
    """The catalog as a Markdown table (PROFILE.md embeds it; a test keeps them in step)."""
    rows = ["| id | severity | profiles | summary | source |", "|---|---|---|---|---|"]
    for r in catalog():
        profiles = ", ".join(r.profiles)
        if r.when:
            profiles += " (when " + ", ".join(f"{k} = {v}" for k, v in r.when.items()) + ")"
        rows.append(f"| `{r.id}` | {r.severity} | {profiles} | {r.summary} | {r.source} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m fhir_mappings.rules > table for PROFILE.md
    print(catalog_markdown())
