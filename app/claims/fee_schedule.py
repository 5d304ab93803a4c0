"""The practice's fee schedule in the store: what a client may write as a ChargeItemDefinition
(the store's guard for the type) and loading a schedule from CSV rows (``therabridge fees load``).

A fee is a ChargeItemDefinition (shape in fhir_mappings/PROFILE.md, "Fee schedules"). A
definition the claim mapping could not price with (no code, no or several base prices, a
negative amount, a period ending before it starts) is refused whole, so what is stored always
bills. Loaded rows get ids derived from tenant, code, modifiers and first day, so loading the
same file again rewrites the same resources (a changed amount becomes their next version).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from app.fhir.errors import FhirError, issue
from app.fhir.store import Unit, Version
from fhir_mappings.charges import RESOURCE_TYPE, definition, definition_problems, fee_of
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

COLUMNS = ("code", "modifiers", "amount", "start", "end")
OPTIONAL_COLUMNS = ("expected",)
_CODE = re.compile(r"^[A-Z0-9]{5}$")
_MODIFIER = re.compile(r"^[A-Z0-9]{2}$")
_MONEY = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """Refuse a ChargeItemDefinition that cannot price a claim line (422, nothing stored)."""
    if incoming is None:
        return None
    problems = definition_problems(incoming)
    if problems:
        raise FhirError(422, "invariant", problems[0][1], issues=[
            issue("invariant", text, expression=[where]) for where, text in problems])
    return incoming


@dataclass(frozen=True)
class FeeRow:
    """One valid CSV row."""

    line: int
    code: str
    modifiers: tuple[str, ...]
    amount: Decimal
    start: date
    end: date | None
    expected: Decimal | None


class FeeFileError(Exception):
    """The file cannot be loaded; ``errors`` say which rows and why (nothing was written)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def parse_rows(text: str, *, payer: str | None = None) -> list[FeeRow]:
    """Validate every row of a fee-schedule CSV; FeeFileError lists every bad row.

    Columns: ``code,modifiers,amount,start,end`` (exactly these, in this order), then an optional
    ``expected`` (the amount contracted with ``payer``). Modifiers are separated by ``:`` or
    spaces; ``end`` may be empty; amounts are positive with at most two decimal places.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    allowed = [list(COLUMNS), [*COLUMNS, *OPTIONAL_COLUMNS]]
    if header not in allowed:
        raise FeeFileError([f"row 1: the header must be {','.join(COLUMNS)} (optionally followed by expected), "
                            f"not {','.join(header) or 'empty'}"])
    has_expected = len(header) == len(COLUMNS) + 1
    if has_expected and not payer:
        raise FeeFileError(["row 1: the expected column needs --payer ORGANIZATION_ID (the payer it is contracted with)"])
    rows: list[FeeRow] = []
    errors: list[str] = []
    seen: dict[tuple[str, tuple[str, ...], date], int] = {}
    for n, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        row, problems = _row(n, cells, len(header))
        if row is not None:
            key = (row.code, row.modifiers, row.start)
            if key in seen:
                problems.append(f"row {n}: repeats row {seen[key]} (same code, modifiers and start)")
            else:
                seen[key] = n
                rows.append(row)
        errors.extend(problems)
    if errors:
        raise FeeFileError(errors)
    if not rows:
        raise FeeFileError(["the file has no fee rows"])
    return rows


def _row(n: int, cells: list[str], width: int) -> tuple[FeeRow | None, list[str]]:
    if len(cells) != width:
        return None, [f"row {n}: has {len(cells)} columns, expected {width}"]
    values = dict(zip((*COLUMNS, *OPTIONAL_COLUMNS), (c.strip() for c in cells)))
    errors: list[str] = []
    code = values["code"].upper()
    if not _CODE.match(code):
        errors.append(f"row {n}: code {values['code']!r} is not a CPT/HCPCS code (5 letters or digits)")
    mods = tuple(sorted({m.upper() for m in re.split(r"[:\s]+", values["modifiers"]) if m}))
    for m in mods:
        if not _MODIFIER.match(m):
            errors.append(f"row {n}: modifier {m!r} is not a 2-character modifier")
    amount = _money(n, "amount", values["amount"], errors)
    expected = _money(n, "expected", values["expected"], errors) if "expected" in values and values["expected"] else None
    start = _date(n, "start", values["start"], errors)
    end = _date(n, "end", values["end"], errors) if values["end"] else None
    if values["start"] == "":
        errors.append(f"row {n}: start is required")
    if start and end and end < start:
        errors.append(f"row {n}: end {end} is before start {start}")
    if errors or amount is None or start is None:
        return None, errors
    return FeeRow(n, code, mods, amount, start, end, expected), []


def _money(n: int, name: str, text: str, errors: list[str]) -> Decimal | None:
    if not _MONEY.match(text) or Decimal(text) <= 0:
        errors.append(f'row {n}: {name} "{text}" is not a money amount (a positive number with at most 2 decimals)')
        return None
    return Decimal(text)


def _date(n: int, name: str, text: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f'row {n}: {name} "{text}" is not a date (YYYY-MM-DD)')
        return None


def definition_id(tenant: str, row: FeeRow) -> str:
    """Stable per tenant, code, modifier set and first day: a reload rewrites the same resource."""
    return stable_id(SERVER_NAMESPACE, "fee", tenant, row.code, ":".join(row.modifiers), row.start.isoformat())


def load(unit: Unit, rows: list[FeeRow], *, payer: str | None = None) -> dict[str, int]:
    """Write the rows as ChargeItemDefinitions in ``unit`` (one transaction); counts by outcome.

    A definition already stored keeps its other expected amounts (the contracts with other
    payers); with ``payer`` the row's ``expected`` sets that payer's amount (empty: removes it).
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    payer_ref = f"Organization/{payer}" if payer else None
    for row in rows:
        rid = definition_id(unit.tenant_id, row)
        current = unit.current(RESOURCE_TYPE, rid)
        stored = current.resource() if current is not None and not current.deleted else None
        before = fee_of(stored) if stored is not None else None
        expected = dict(before.expected) if before else {}
        if payer_ref:
            expected.pop(payer_ref, None)
            if row.expected is not None:
                expected[payer_ref] = row.expected
        resource = definition(row.code, row.modifiers, row.amount, definition_id=rid, start=row.start, end=row.end,
                              expected=expected, allowed=before.allowed if before else None)
        if stored is not None:
            stored.pop("meta", None)
            if stored == resource:
                counts["unchanged"] += 1
                continue
            counts["updated"] += 1
        else:
            counts["created"] += 1
        unit.update(RESOURCE_TYPE, rid, resource)
    return counts
