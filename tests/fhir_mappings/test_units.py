"""Unit arithmetic: the CMS chart, CMS's four worked examples, the AMA per-code contrast,
the CO/CQ unit split, and properties that must hold for any minutes."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_mappings.units import (
    allocate, allocate_per_code, allocate_total_time, split_assistant_units, units_for_minutes,
    untimed_assistant_applies,
)

CHART = [  # (minutes low, minutes high, units) — MCPM ch.5 §20.2 chart
    (0, 7, 0), (8, 22, 1), (23, 37, 2), (38, 52, 3), (53, 67, 4),
    (68, 82, 5), (83, 97, 6), (98, 112, 7), (113, 127, 8),
]


@pytest.mark.parametrize("low,high,units", CHART)
def test_chart_rows(low: int, high: int, units: int) -> None:
    assert units_for_minutes(low) == units
    assert units_for_minutes(high) == units
    if high < 127:
        assert units_for_minutes(high + 1) == units + 1


@pytest.mark.parametrize(
    "minutes,expected",
    [
        # Example 1: 24 + 23 = 47 min -> 3 units, more to the longer service.
        ({"97112": 24, "97110": 23}, {"97112": 2, "97110": 1}),
        # Example 3: 33 + 7 = 40 -> 3; leftover 3 min of 97110 loses to 7 min of 97140.
        ({"97110": 33, "97140": 7}, {"97110": 2, "97140": 1}),
        # Example 4: 49 min -> 3 units; 97035 (8 min) is not billed.
        ({"97110": 18, "97140": 13, "97116": 10, "97035": 8}, {"97110": 1, "97140": 1, "97116": 1, "97035": 0}),
        # Rule 5: two services of 7 minutes or less that reach 8 together -> one unit of the longer.
        ({"97110": 5, "97140": 7}, {"97110": 0, "97140": 1}),
    ],
    ids=["cms-example-1", "cms-example-3", "cms-example-4", "two-short-services"],
)
def test_cms_worked_examples(minutes: dict[str, int], expected: dict[str, int]) -> None:
    assert allocate_total_time(minutes) == expected


def test_cms_example_2_gives_two_and_one_never_three_of_one() -> None:
    """Example 2: 20 + 20 = 40 -> 3 units, 2 of either and 1 of the other (tie broken by code)."""
    result = allocate_total_time({"97112": 20, "97110": 20})
    assert sorted(result.values()) == [1, 2]
    assert result == {"97110": 2, "97112": 1}


@pytest.mark.parametrize(
    "minutes,medicare,ama",
    [
        ({"97112": 24, "97110": 23}, 3, 4),
        ({"97110": 33, "97140": 7}, 3, 2),
        ({"97110": 7, "97140": 7, "97530": 7}, 1, 0),
    ],
)
def test_ama_per_code_contrast(minutes: dict[str, int], medicare: int, ama: int) -> None:
    assert sum(allocate("total-time", minutes).values()) == medicare
    assert sum(allocate("per-code", minutes).values()) == ama


def test_full_unit_variant_needs_fifteen_minutes() -> None:
    assert allocate("full-unit", {"97110": 29, "97140": 14}) == {"97110": 1, "97140": 0}


minutes_maps = st.dictionaries(
    st.sampled_from(["97110", "97112", "97116", "97140", "97530", "97535"]),
    st.integers(min_value=0, max_value=150), min_size=1, max_size=6,
)


@given(minutes_maps)
def test_total_time_never_exceeds_the_chart(minutes: dict[str, int]) -> None:
    allocated = allocate_total_time(minutes)
    assert sum(allocated.values()) == units_for_minutes(sum(minutes.values()))
    for code, m in minutes.items():
        assert allocated[code] >= m // 15  # a service of 15+ minutes keeps its full units
        assert allocated[code] <= m // 15 + 1


@given(minutes_maps)
def test_per_code_never_exceeds_the_chart(minutes: dict[str, int]) -> None:
    for code, units in allocate_per_code(minutes).items():
        assert units == units_for_minutes(minutes[code])
        assert units * 15 - 7 <= max(minutes[code], 0) or units == 0


@given(minutes_maps, st.sampled_from(["97110", "97112", "97116", "97140", "97530", "97535"]),
       st.integers(min_value=1, max_value=60))
def test_adding_minutes_never_removes_a_unit(minutes: dict[str, int], code: str, extra: int) -> None:
    more = dict(minutes)
    more[code] = more.get(code, 0) + extra
    assert sum(allocate_total_time(more).values()) >= sum(allocate_total_time(minutes).values())
    before, after = allocate_per_code(minutes), allocate_per_code(more)
    for c in minutes:
        assert after[c] >= before[c]


@given(st.integers(min_value=0, max_value=400))
def test_per_code_and_per_day_agree_for_a_single_code(m: int) -> None:
    assert allocate_total_time({"97110": m}) == allocate_per_code({"97110": m}) == {"97110": units_for_minutes(m)}


@pytest.mark.parametrize(
    "units,therapist,assistant,expected",
    [
        (1, 5, 10, (0, 1)),    # assistant furnished most of the single unit
        (1, 12, 3, (0, 1)),    # 3 of 15 minutes is more than 10 % of the unit
        (1, 14, 1, (1, 0)),    # 1 of 15 minutes is within the de minimis 10 %
        (2, 12, 12, (1, 1)),   # CY 2022: two units left, each furnished 9-14 minutes -> one each
        (3, 15, 23, (1, 2)),   # full block each, the leftover 8 minutes are the assistant's
        (2, 30, 0, (2, 0)),
        (2, 0, 30, (0, 2)),
    ],
)
def test_assistant_unit_split(units: int, therapist: int, assistant: int, expected: tuple[int, int]) -> None:
    assert split_assistant_units(units, therapist, assistant) == expected


@given(st.integers(0, 8), st.integers(0, 120), st.integers(0, 120))
def test_assistant_split_keeps_every_unit(units: int, therapist: int, assistant: int) -> None:
    t, a = split_assistant_units(units, therapist, assistant)
    assert t + a == units and t >= 0 and a >= 0
    if assistant == 0:
        assert a == 0


def test_untimed_de_minimis() -> None:
    assert untimed_assistant_applies(40, 5) is True   # 5 of 45 min > 10 %
    assert untimed_assistant_applies(45, 4) is False  # 4 of 49 min < 10 %
    assert untimed_assistant_applies(45, 0) is False
