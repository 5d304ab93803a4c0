"""Underpayments: an 835 that allows less for a claim's lines than the practice's contract with
the payer opens one ``underpaid`` work item per claim and remittance.

The contract is the ``informational`` price components of the practice's ChargeItemDefinitions
that name the payer Organization (fhir_mappings/PROFILE.md, "Fee schedules"), per unit, in force
on the line's date of service. What the payer recognized for a line is its allowed amount
(AMT*B6), else what it paid plus the patient's share (group PR): a deductible, copay or
coinsurance is not an underpayment. Lines the payer paid nothing for (denials, which have their
own work items) and lines without a contracted amount are left out; the claim is underpaid when
the lines compared were allowed less in total than contracted, by the difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from app.claims.gather import fee_schedule
from app.fhir.store import Unit
from app.fhir.tasks import task_input, work_item
from app.payers.outcomes import put
from fhir_mappings import ChargeMaster
from fhir_mappings.vocabulary import LINE_CONTROL_NUMBER, SERVER_NAMESPACE, stable_id
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance, ServicePayment

TASK_CODE = "underpaid"
NOT_PAYMENTS = ("4", "22")  # CLP02 denied, reversal of a previous payment
_Z = Decimal(0)


@dataclass(frozen=True)
class Shortfall:
    expected: Decimal  # contracted, for the lines compared
    allowed: Decimal  # what the payer recognized for them
    lines: list[str]  # "97110 x2: expected 80.00, allowed 70.20" per line compared

    @property
    def difference(self) -> Decimal:
        return self.expected - self.allowed


def open_work_items(unit: Unit, remittance: Remittance, claims: dict[str, dict[str, Any]],
                    eobs: list[dict[str, Any]]) -> int:
    """For each of the remittance's claims of ours paid under contract, one ``underpaid`` Task
    (id from the claim and the EOB, so a redelivered 835 opens none again); how many opened."""
    paid = [(p, e, claims[p.patient_control_number]) for p, e in zip(remittance.claims, eobs)
            if p.patient_control_number in claims and p.status not in NOT_PAYMENTS]
    if not paid:
        return 0
    # one search for the fees of every claim the remittance pays
    schedule = ChargeMaster.from_definitions(fee_schedule(unit, {_code(i) for *_, c in paid for i in c.get("item") or ()}))
    opened = 0
    for payment, eob, claim in paid:
        short = shortfall(schedule, claim, payment)
        if short is None or short.difference <= 0:
            continue
        task_id = stable_id(SERVER_NAMESPACE, "task", TASK_CODE, claim["id"], eob["id"])
        if unit.current("Task", task_id) is not None:
            continue
        put(unit, _task(unit, claim, eob, payment, short, task_id, remittance.trace_number or None))
        opened += 1
    return opened


def shortfall(schedule: ChargeMaster, claim: dict[str, Any], payment: ClaimPayment) -> Shortfall | None:
    """Contracted vs recognized amounts of the claim's lines this payment covers (None: no contract)."""
    payer = (claim.get("insurer") or {}).get("reference")
    items = claim.get("item") or []
    if not payer or not items:
        return None
    day_default = (claim.get("billablePeriod") or {}).get("start")
    contracted: list[tuple[dict[str, Any], Decimal]] = []
    for item in items:
        day = item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start") or day_default
        if not day:
            continue
        per_unit = schedule.expected(_code(item), _modifiers(item), on=date.fromisoformat(day[:10]), payer=payer)
        if per_unit is not None:
            contracted.append((item, per_unit * Decimal(str((item.get("quantity") or {}).get("value", 1)))))
    if not contracted:
        return None
    if not payment.services:  # paid at the claim level only: comparable when every line is contracted
        if len(contracted) != len(items) or payment.paid <= 0:
            return None
        expected = sum((amount for _, amount in contracted), _Z)
        allowed = payment.paid + payment.patient_responsibility
        return Shortfall(expected, allowed, [f"claim: expected {expected:.2f}, allowed {allowed:.2f}"])
    matched = _match(items, payment.services)
    expected = allowed = _Z
    lines = []
    for item, amount in contracted:
        service = matched.get(id(item))
        if service is None or service.paid <= 0:
            continue
        recognized = service.allowed if service.allowed is not None else \
            service.paid + sum((a.amount for a in service.adjustments if a.group == "PR"), _Z)
        expected += amount
        allowed += recognized
        qty = (item.get("quantity") or {}).get("value", 1)
        lines.append(f"{' '.join([_code(item), *_modifiers(item)])} x{qty}: expected {amount:.2f}, "
                     f"allowed {recognized:.2f}")
    return Shortfall(expected, allowed, lines) if lines else None


def _match(items: list[dict[str, Any]], services: list[ServicePayment]) -> dict[int, ServicePayment]:
    """Claim item → its 835 service line: by line control number (REF*6R), else the next
    unmatched service line with the item's code."""
    out: dict[int, ServicePayment] = {}
    used: set[int] = set()
    by_control = {s.line_control_number: s for s in services if s.line_control_number}
    for item in items:
        control = next((e.get("valueString") for e in item.get("extension") or ()
                        if e.get("url") == LINE_CONTROL_NUMBER), None)
        service = by_control.get(control) if control else None
        if service is None:
            service = next((s for s in services if id(s) not in used and _code(item) in (s.original_code, s.code)),
                           None)
        if service is not None and id(service) not in used:
            used.add(id(service))
            out[id(item)] = service
    return out


def _code(item: dict[str, Any]) -> str:
    return next((c.get("code") or "" for c in (item.get("productOrService") or {}).get("coding") or ()), "")


def _modifiers(item: dict[str, Any]) -> list[str]:
    return [c.get("code") for m in item.get("modifier") or () for c in m.get("coding") or () if c.get("code")]


def _money(value: Decimal) -> dict[str, Any]:
    return {"value": float(value), "currency": "USD"}


def _task(unit: Unit, claim: dict[str, Any], eob: dict[str, Any], payment: ClaimPayment, short: Shortfall,
          task_id: str, trace: str | None) -> dict[str, Any]:
    inputs = [task_input("difference", valueMoney=_money(short.difference)),
              task_input("expected", valueMoney=_money(short.expected)),
              task_input("allowed", valueMoney=_money(short.allowed)),
              task_input("paid", valueMoney=_money(payment.paid)),
              task_input("explanation-of-benefit", valueReference={"reference": f"ExplanationOfBenefit/{eob['id']}"})]
    if trace:
        inputs.append(task_input("trace-number", valueString=trace))
    inputs += [task_input("line", valueString=text) for text in short.lines]
    return work_item(
        TASK_CODE, "Claim underpaid",
        f"The payer allowed {short.allowed:.2f} USD for lines contracted at {short.expected:.2f} USD: "
        f"{short.difference:.2f} USD short. Check the remittance against the contract and appeal or "
        "ask the payer to reprocess.", unit.now,
        task_id=task_id, focus=f"Claim/{claim['id']}", patient=claim.get("patient"), business_status="underpaid",
        inputs=inputs)
