"""Timed-code unit arithmetic (15-minute codes).

Two methods, chosen per payer profile:

* ``total-time`` — Medicare's 8-minute rule, MCPM Pub. 100-04 ch. 5 §20.2: the day's total timed
  minutes (per discipline) fix the number of units, which are then spread over the codes the way
  CMS's worked examples do (full 15-minute blocks first, then the largest leftovers).
* ``per-code`` — the AMA CPT midpoint rule: the same chart applied to each code's own minutes.
"""
from __future__ import annotations

from collections.abc import Mapping

UNIT_MINUTES = 15
MIDPOINT = 8


def units_for_minutes(minutes: int) -> int:
    """Units for one block of timed minutes: 0–7 → 0, 8–22 → 1, 23–37 → 2, … (the CMS/AMA chart)."""
    if minutes < MIDPOINT:
        return 0
    return (minutes + MIDPOINT - 1) // UNIT_MINUTES


def allocate_total_time(minutes_by_code: Mapping[str, int]) -> dict[str, int]:
    """Medicare total-time allocation (MCPM ch. 5 §20.2 and its four worked examples).

    Total units come from the sum of minutes. Each code first keeps its full 15-minute units;
    the remaining units go one each to the codes with the largest leftover minutes. Ties go to
    the code with more total minutes, then to the lower code, so the result is deterministic.
    The remaining count never exceeds the number of codes with leftovers: it equals
    (sum of leftovers + 7) // 15 and each leftover is at most 14.
    """
    total = sum(minutes_by_code.values())
    units = {code: m // UNIT_MINUTES for code, m in minutes_by_code.items()}
    remaining = units_for_minutes(total) - sum(units.values())
    leftovers = sorted(
        ((m % UNIT_MINUTES, m, code) for code, m in minutes_by_code.items() if m % UNIT_MINUTES),
        key=lambda t: (-t[0], -t[1], t[2]),
    )
    for _, _, code in leftovers[:remaining]:
        units[code] += 1
    return units


def allocate_per_code(minutes_by_code: Mapping[str, int]) -> dict[str, int]:
    """AMA per-code rule: each code's own minutes through the chart [Premera-AMA]."""
    return {code: units_for_minutes(m) for code, m in minutes_by_code.items()}


def full_unit_per_code(minutes_by_code: Mapping[str, int]) -> dict[str, int]:
    """Stricter payer variant: a unit needs a full 15 minutes of the code [OTDude]."""
    return {code: m // UNIT_MINUTES for code, m in minutes_by_code.items()}


METHODS = {
    "total-time": allocate_total_time,
    "per-code": allocate_per_code,
    "full-unit": full_unit_per_code,
}


def allocate(method: str, minutes_by_code: Mapping[str, int]) -> dict[str, int]:
    """Units per code under the named profile method."""
    return METHODS[method](minutes_by_code)


def split_assistant_units(units: int, therapist_minutes: int, assistant_minutes: int) -> tuple[int, int]:
    """Split a code's billed units into (therapist units, assistant units) for CO/CQ.

    Applies the de minimis standard per unit [MediClaim-CQ], [Montero-CQ]: full 15-minute blocks
    go to whoever furnished them; when two units remain and both furnished leftover minutes, one
    unit each (CY 2022 refinement, [TherapyComply-CQ2022]); a single remaining unit carries the
    assistant modifier when the assistant furnished more than 10 % of that unit's minutes.
    Minutes the therapist and assistant spend together count as the therapist's.
    """
    if units <= 0:
        return 0, 0
    if assistant_minutes <= 0:
        return units, 0
    if therapist_minutes <= 0:
        return 0, units
    t_full, a_full = therapist_minutes // UNIT_MINUTES, assistant_minutes // UNIT_MINUTES
    t_rem, a_rem = therapist_minutes % UNIT_MINUTES, assistant_minutes % UNIT_MINUTES
    t_units, a_units = min(t_full, units), min(a_full, max(units - t_full, 0))
    remaining = units - t_units - a_units
    while remaining > 0:
        if remaining >= 2 and t_rem and a_rem:
            t_units, a_units, remaining = t_units + 1, a_units + 1, remaining - 2
            t_rem = a_rem = 0
            continue
        leftover = t_rem + a_rem
        if a_rem and a_rem * 10 > leftover:
            a_units, a_rem = a_units + 1, 0
        else:
            t_units, t_rem = t_units + 1, 0
        remaining -= 1
    return t_units, a_units


def untimed_assistant_applies(therapist_minutes: int, assistant_minutes: int) -> bool:
    """Untimed service: CO/CQ when the assistant's independent part exceeds 10 % of the service."""
    total = therapist_minutes + assistant_minutes
    return assistant_minutes > 0 and assistant_minutes * 10 > total
