"""A practice's fee schedule: the fee it bills per code (Claim.item.unitPrice) on a date of
service, and the amounts it expects payers to allow (contracted per payer, or an estimate).

The schedule is read from the practice's ``ChargeItemDefinition`` resources (shape in
PROFILE.md, "Fee schedules"): one per code, optionally per modifier set, with an
``effectivePeriod``; only ``active`` ones bill. The ``base`` price component is the fee;
``informational`` components carry expected allowed amounts, naming the payer Organization in a
``fee-payer`` extension when contracted. Pure: no store, no clock.
"""
from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_mappings.vocabulary import FEE_MODIFIER, FEE_PAYER, FEE_SCHEDULE, PRICE_COMPONENT

RESOURCE_TYPE = "ChargeItemDefinition"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Fee:
    """One active fee-schedule entry: a code (and modifier set) priced for a period."""

    code: str
    modifiers: frozenset[str]
    start: date | None
    end: date | None  # inclusive, as FHIR Period.end
    amount: Decimal
    currency: str
    expected: Mapping[str, Decimal]  # payer reference (Organization/id) -> contracted allowed per unit
    allowed: Decimal | None  # expected allowed per unit when no payer contract names the payer
    source: str  # ChargeItemDefinition/id

    def in_force(self, on: date) -> bool:
        return (self.start is None or self.start <= on) and (self.end is None or on <= self.end)


@dataclass(frozen=True)
class ChargeMaster:
    """The fee schedule in force: look fees up by code, modifiers and date of service."""

    currency: str = "USD"
    by_code: Mapping[str, tuple[Fee, ...]] = field(default_factory=dict)
    #: (code, modifiers, day) -> the entry found (a schedule answers the same look-ups for every
    #: line and claim of a batch; its entries never change).
    _found: dict[tuple[str, frozenset[str], date], "Fee | None"] = field(default_factory=dict, repr=False,
                                                                          compare=False)

    @classmethod
    def empty(cls) -> "ChargeMaster":
        """No fee schedule: every code is unpriced (a CHARGE-MISSING edit)."""
        return cls()

    @classmethod
    def from_definitions(cls, resources: Iterable[dict[str, Any]]) -> "ChargeMaster":
        """Build from ChargeItemDefinition dicts (other resource types, and definitions that are
        not ``active`` or carry no usable ``base`` price, are ignored)."""
        grouped: dict[str, list[Fee]] = {}
        for resource in resources:
            fee = fee_of(resource)
            if fee is not None:
                grouped.setdefault(fee.code, []).append(fee)
        currencies = sorted({f.currency for fees in grouped.values() for f in fees})
        return cls(currencies[0] if len(currencies) == 1 else "USD",
                   {code: tuple(fees) for code, fees in grouped.items()})

    @classmethod
    def of_inputs(cls, inputs: Any) -> "ChargeMaster":
        """The fee schedule given with the claim inputs (their ChargeItemDefinitions; none: empty)."""
        return cls.from_definitions(e.resource for e in inputs.charge_definitions)

    def entry(self, code: str, modifiers: Iterable[str] = (), *, on: date) -> Fee | None:
        """The entry in force on ``on`` for ``code`` billed with ``modifiers``: among entries whose
        modifier set is contained in ``modifiers``, the most specific, then the latest start."""
        mods = frozenset(m for m in modifiers if m)
        key = (code, mods, on)
        if key not in self._found:
            fits = [f for f in self.by_code.get(code, ()) if f.modifiers <= mods and f.in_force(on)]
            self._found[key] = max(fits, key=lambda f: (len(f.modifiers), f.start or date.min, sorted(f.modifiers),
                                                        f.source)) if fits else None
        return self._found[key]

    def fee(self, code: str, modifiers: Iterable[str] = (), *, on: date) -> Decimal | None:
        """The practice's fee per unit on ``on``; None when no fee is in force."""
        found = self.entry(code, modifiers, on=on)
        return found.amount if found else None

    def expected(self, code: str, modifiers: Iterable[str] = (), *, on: date, payer: str | None) -> Decimal | None:
        """The amount per unit contracted with ``payer`` (``Organization/id``); None without a contract."""
        found = self.entry(code, modifiers, on=on)
        return found.expected.get(payer) if found and payer else None

    def allowed_estimate(self, code: str, modifiers: Iterable[str] = (), *, on: date,
                         payer: str | None) -> Decimal:
        """What the payer is expected to allow per unit (for the KX year-to-date estimate): the
        contracted amount, else the payer-less informational amount, else the fee, else 0."""
        found = self.entry(code, modifiers, on=on)
        if found is None:
            return Decimal(0)
        if payer and payer in found.expected:
            return found.expected[payer]
        return found.allowed if found.allowed is not None else found.amount


# --- reading one ChargeItemDefinition ------------------------------------------------------

def fee_of(resource: dict[str, Any]) -> Fee | None:
    """The schedule entry a ChargeItemDefinition defines, or None when it does not bill."""
    if resource.get("resourceType") != RESOURCE_TYPE or resource.get("status") != "active":
        return None
    if definition_problems(resource):
        return None
    coding = _coding(resource)
    assert coding is not None
    period = resource.get("effectivePeriod") or {}
    base, expected, allowed = None, {}, None
    for component in _components(resource):
        amount = _amount(component)
        if amount is None:
            continue
        if component.get("type") == "base" and base is None:
            base = (amount, (component.get("amount") or {}).get("currency") or "USD")
        elif component.get("type") == "informational":
            payer = _payer(component)
            if payer:
                expected[payer] = amount
            elif allowed is None:
                allowed = amount
    assert base is not None
    return Fee(code=coding["code"], modifiers=modifiers_of(resource), start=_day(period.get("start"), end=False),
               end=_day(period.get("end"), end=True), amount=base[0], currency=base[1], expected=expected,
               allowed=allowed, source=f"{RESOURCE_TYPE}/{resource.get('id', '')}")


def modifiers_of(resource: dict[str, Any]) -> frozenset[str]:
    """The modifiers a definition prices (``fee-modifier`` extensions on its code's coding)."""
    coding = _coding(resource) or {}
    return frozenset(e["valueCode"] for e in coding.get("extension") or ()
                     if e.get("url") == FEE_MODIFIER and e.get("valueCode"))


def definition_problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """What makes a ChargeItemDefinition unusable as a fee: (FHIRPath expression, explanation).

    A definition needs a code, exactly one ``base`` price, no negative amount and an
    ``effectivePeriod`` that does not end before it starts.
    """
    problems: list[tuple[str, str]] = []
    if _coding(resource) is None:
        problems.append(("ChargeItemDefinition.code", "The fee needs a code (code.coding with the CPT/HCPCS code)."))
    bases = 0
    for g, group in enumerate(resource.get("propertyGroup") or ()):
        for c, component in enumerate(group.get("priceComponent") or ()):
            where = f"ChargeItemDefinition.propertyGroup[{g}].priceComponent[{c}]"
            raw = (component.get("amount") or {}).get("value")
            amount = _amount(component)
            if raw is not None and amount is None:
                problems.append((f"{where}.amount.value", f"{raw!r} is not a money amount."))
            elif amount is not None and amount < 0:
                problems.append((f"{where}.amount.value", f"The amount {amount} is negative; prices are never below 0."))
            if component.get("type") == "base":
                bases += 1
                if amount is None and raw is None:
                    problems.append((f"{where}.amount", "The base price component has no amount."))
            if component.get("type") == "informational" and _payer(component) is None and \
                    any(e.get("url") == FEE_PAYER for e in component.get("extension") or ()):
                problems.append((f"{where}.extension", "The fee-payer extension must reference an Organization."))
    if bases == 0:
        problems.append(("ChargeItemDefinition.propertyGroup",
                         "No base price: add a priceComponent of type base with the amount billed."))
    elif bases > 1:
        problems.append(("ChargeItemDefinition.propertyGroup", "More than one base price; keep exactly one."))
    period = resource.get("effectivePeriod") or {}
    try:
        start, end = _day(period.get("start"), end=False), _day(period.get("end"), end=True)
    except ValueError:
        problems.append(("ChargeItemDefinition.effectivePeriod", "The effective period's dates are not valid dates."))
    else:
        if start and end and end < start:
            problems.append(("ChargeItemDefinition.effectivePeriod.end",
                             f"The effective period ends ({end}) before it starts ({start})."))
    return problems


def _coding(resource: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (resource.get("code") or {}).get("coding") or () if c.get("code")), None)


def _components(resource: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for group in resource.get("propertyGroup") or ():
        yield from group.get("priceComponent") or ()


def _amount(component: dict[str, Any]) -> Decimal | None:
    value = (component.get("amount") or {}).get("value")
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite():
            return None
        cents = amount.quantize(CENT)
    except InvalidOperation:
        return None
    return cents if cents == amount else amount


def _payer(component: dict[str, Any]) -> str | None:
    for ext in component.get("extension") or ():
        if ext.get("url") == FEE_PAYER:
            ref = (ext.get("valueReference") or {}).get("reference") or ""
            return ref if ref.startswith("Organization/") else None
    return None


def _day(value: str | None, *, end: bool) -> date | None:
    """A Period bound as a day; a partial date (``2025``, ``2025-06``) covers its whole span."""
    if not value:
        return None
    text = value[:10]
    if len(text) == 4:
        return date(int(text), 12, 31) if end else date(int(text), 1, 1)
    if len(text) == 7:
        year, month = int(text[:4]), int(text[5:7])
        return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    return date.fromisoformat(text)


# --- writing one ChargeItemDefinition -----------------------------------------------------

def definition(code: str, modifiers: Iterable[str], amount: Decimal, *, definition_id: str,
               start: date | None, end: date | None = None, expected: Mapping[str, Decimal] | None = None,
               allowed: Decimal | None = None, currency: str = "USD",
               system: str = "http://www.ama-assn.org/go/cpt") -> dict[str, Any]:
    """The ChargeItemDefinition of one fee (the shape ``fee_of`` reads): ``url`` names the code and
    modifier set, ``version`` the first day in force; ``expected`` maps payer references to
    contracted amounts per unit, ``allowed`` is a payer-less expected allowed amount."""
    mods = sorted({m for m in modifiers if m})
    coding: dict[str, Any] = {"system": system, "code": code}
    if mods:
        coding["extension"] = [{"url": FEE_MODIFIER, "valueCode": m} for m in mods]
    components: list[dict[str, Any]] = [{"type": "base", "amount": _money(amount, currency)}]
    if allowed is not None:
        components.append({"type": "informational", "code": _component_code("expected-allowed"),
                           "amount": _money(allowed, currency)})
    for payer, value in sorted((expected or {}).items()):
        components.append({"type": "informational", "code": _component_code("contracted"),
                           "extension": [{"url": FEE_PAYER, "valueReference": {"reference": payer}}],
                           "amount": _money(value, currency)})
    period: dict[str, str] = {}
    if start:
        period["start"] = start.isoformat()
    if end:
        period["end"] = end.isoformat()
    resource: dict[str, Any] = {
        "resourceType": RESOURCE_TYPE, "id": definition_id,
        "url": f"{FEE_SCHEDULE}/{'-'.join([code, *mods])}",
        "version": start.isoformat() if start else "open",
        "title": " ".join([code, *mods]), "status": "active",
        "code": {"coding": [coding]},
    }
    if period:
        resource["effectivePeriod"] = period
    resource["propertyGroup"] = [{"priceComponent": components}]
    return resource


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    # A JSON number, as every amount the server writes; ``_amount`` reads it back to the cent.
    return {"value": float(amount), "currency": currency}


def _component_code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": PRICE_COMPONENT, "code": code}]}
