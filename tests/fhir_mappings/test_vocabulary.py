"""The product's own URLs are named once, in ``fhir_mappings.vocabulary``: no other module of the
package spells one, and the data files and PROFILE.md spell only URLs the vocabulary names."""
from __future__ import annotations

import re
from pathlib import Path

import fhir_mappings.vocabulary as vocabulary

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"
PRODUCT_URL = re.compile(r"https?://therabridge\.dev[A-Za-z0-9/_-]*")


def _named() -> set[str]:
    return {v for k, v in vars(vocabulary).items() if k.isupper() and isinstance(v, str)}


def test_only_the_vocabulary_spells_a_product_url() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name != "vocabulary.py":
            assert "therabridge.dev" not in path.read_text(), f"{path.name}: name the URL from fhir_mappings.vocabulary"


def test_data_and_profile_spell_the_vocabulary_urls() -> None:
    named = _named()
    for path in [*sorted((PACKAGE / "data").glob("*.json")), PACKAGE / "PROFILE.md"]:
        for url in PRODUCT_URL.findall(path.read_text()):
            assert url in named, f"{path.name}: {url} is not in fhir_mappings.vocabulary"
