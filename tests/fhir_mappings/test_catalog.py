"""The rule catalog, its data and its documentation stay consistent."""
from __future__ import annotations

import re
from pathlib import Path

from fhir_mappings.profiles import profile_names
from fhir_mappings.rules import catalog, catalog_markdown, registered_check_ids, rules_by_id

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"


def test_rule_ids_unique_and_complete() -> None:
    ids = [r.id for r in catalog()]
    assert len(ids) == len(set(ids))
    for r in catalog():
        assert r.severity in ("error", "warning")
        assert r.summary and r.source
        assert set(r.profiles) <= set(profile_names())


def test_every_check_and_plan_finding_has_a_catalog_entry() -> None:
    known = set(rules_by_id())
    assert registered_check_ids() <= known
    planned = set(re.findall(r'plan\.add\(\s*"([A-Z0-9-]+)"', (PACKAGE / "plan.py").read_text()))
    assert planned and planned <= known
    orphans = known - registered_check_ids() - planned
    assert not orphans, f"rules that nothing can raise: {orphans}"


def test_profile_doc_lists_every_rule() -> None:
    doc = (PACKAGE / "PROFILE.md").read_text()
    for r in catalog():
        assert f"`{r.id}`" in doc, r.id
    assert catalog_markdown() in doc, "PROFILE.md catalog is stale: regenerate with python -m fhir_mappings.rules"
