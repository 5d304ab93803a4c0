"""The denial rules as the data file states them: categories, next actions, RARC and group
overrides, deadlines and priorities; and the code tables they read stay consistent."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from payer_adapters.x12 import denials
from payer_adapters.x12.codes import table


@pytest.mark.parametrize("group, carc, remarks, category, action, denial", [
    ("CO", "197", [], "authorization", "appeal", True),
    ("CO", "50", ["N115"], "medical-necessity", "appeal", True),
    ("CO", "4", [], "coding", "correct-and-resubmit", True),
    ("CO", "16", ["MA130"], "information", "correct-and-resubmit", True),
    ("CO", "50", ["N211"], "medical-necessity", "write-off", True),  # no appeal rights
    ("CO", "50", ["N704"], "medical-necessity", "correct-and-resubmit", True),
    ("CO", "22", ["MA18"], "cob", "no-action", True),  # crossed over already
    ("CO", "22", [], "cob", "bill-next-payer", True),
    ("CO", "45", [], "contractual", "no-action", False),
    ("PR", "45", [], "patient-responsibility", "bill-patient", False),  # non-participating provider
    ("PR", "2", [], "patient-responsibility", "bill-patient", False),
    ("PR", "204", [], "patient-responsibility", "bill-patient", False),  # the group says who is liable
    ("OA", "23", [], "contractual", "no-action", False),
    ("CO", "29", [], "timely-filing", "write-off", True),
    ("CO", "ZZ9", [], "unknown", "appeal", True),  # a code we do not know is looked at, not dropped
])
def test_classification(group: str, carc: str, remarks: list[str], category: str, action: str, denial: bool) -> None:
    assert denials.classify(group, carc, remarks) == denials.Classification(category, action, denial)


def test_a_payer_entry_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(table("denial_categories")["payers"], "PAYER1",
                        {"carc": {"119": {"category": "authorization", "action": "appeal"}},
                         "rarc": {"N130": {"action": "bill-patient"}}})
    assert denials.classify("CO", "119", [], "PAYER1") == denials.Classification("authorization", "appeal", True)
    assert denials.classify("CO", "119", [], "OTHER").category == "benefit-limit"
    assert denials.classify("CO", "197", ["N130"], "PAYER1").action == "bill-patient"


def test_deadlines_and_priority() -> None:
    remitted = date(2026, 11, 23)
    assert denials.appeal_deadline(remitted, "MB", None) == (date(2027, 3, 23), "redetermination")
    assert denials.appeal_deadline(remitted, "12", None)[0] == date(2027, 1, 22)  # 60 days by default
    assert denials.filing_deadline(date(2026, 11, 3), None, None) == date(2027, 2, 1)
    assert denials.priority(Decimal("80.00"), 120) == "routine"
    assert denials.priority(Decimal("500.00"), 120) == "urgent"
    assert denials.priority(Decimal("80.00"), 30) == "urgent"
    assert denials.priority(Decimal("80.00"), 14) == "asap"
    assert denials.priority(Decimal("9000"), -3) == "asap"  # late already


def test_stc_status_decides_a_rejections_category() -> None:
    assert denials.rejection_category(["164"]) == "eligibility"
    assert denials.rejection_category(["562"]) == "provider-enrollment"
    assert denials.rejection_category(["999999"]) == "information"


def test_every_code_the_rules_name_is_in_the_code_tables() -> None:
    rules, carc, rarc = table("denial_categories"), table("carc"), table("rarc")
    named = {k.split("-")[-1] for k in rules["carc"]}
    assert named <= set(carc), sorted(named - set(carc))
    assert set(rules["rarc"]) <= set(rarc), sorted(set(rules["rarc"]) - set(rarc))
    assert {v["category"] for v in rules["carc"].values()} <= set(rules["categories"])
    assert {c["action"] for c in rules["categories"].values()} <= set(rules["actions"])


def test_code_tables_state_source_version_and_coverage() -> None:
    import json
    from payer_adapters.x12.codes import DATA

    for name in ("carc", "rarc"):
        raw = json.loads((DATA / f"{name}.json").read_text())
        assert raw["_source"] and raw["_version"] and raw["_coverage"].startswith(("complete", "partial: "))
        codes = {k: v for k, v in raw.items() if not k.startswith("_")}
        assert raw["_coverage"].startswith("complete") or f"partial: {len(codes)} codes" in raw["_coverage"]
        for code, entry in codes.items():
            assert entry["text"], code
            for key in ("start", "modified", "stop"):
                if key in entry:
                    date.fromisoformat(entry[key])
            if "stop" in entry:
                assert entry["start"] < entry["stop"], code


@pytest.mark.parametrize("name", ["denial_categories", "carc", "rarc"])
def test_no_code_is_listed_twice(name: str) -> None:
    """JSON keeps the last of two equal keys silently: a code listed twice would lose a rule."""
    import json
    from payer_adapters.x12.codes import DATA

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})
        return dict(pairs)

    json.loads((DATA / f"{name}.json").read_text(), object_pairs_hook=unique)
