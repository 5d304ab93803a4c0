"""Appeals the sandbox payer receives, and how it decides them — by the ``appeals`` rules of
``data/sandbox.json``, deterministically.

An appeal arrives as a FHIR ``Communication`` (the FHIR surface, ``POST /fhir/Communication``)
or as the package a biller mailed or uploaded (``POST /sandbox/appeals/mail``): a ``Bundle``
holding the letter's ``DocumentReference`` and its enclosures. Either names the claim by the
patient control number (a ``Reference.identifier`` in ``Communication.about`` or the letter's
``context.related``).

What the package encloses is sorted into kinds: ``plan-of-care`` (a CarePlan), ``authorization``
(a ClaimResponse with ``use`` preauthorization), ``clinical-notes`` (any other document). The
first rule whose CARCs meet the claim's denial codes and whose ``needs`` are all enclosed decides;
otherwise the default (uphold). Either way the claim is processed again under a new payer claim
number, reversing the decision that stood: overturned, its denied lines are paid as any line is;
upheld, they stay denied. The answer then travels like any adjudication (an 835 in the mailbox,
a ClaimResponse through ``$inquire``), so the client posts it the usual way.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from payer_adapters.sandbox.engine import ClaimResult, Engine, money

PCN_SYSTEM_SUFFIX = "patient-control-number"
FHIR_TYPES = ("application/fhir+json", "application/json")


@dataclass
class AppealDecision:
    """What the payer decided on one appeal: ``overturn`` or ``uphold``, and the claim as
    processed again (its ``reversal`` the decision it replaces)."""

    key: str
    decision: str
    result: ClaimResult
    enclosures: list[str]


def _resources(package: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources a package carries: a Bundle's entries, or a Communication's FHIR JSON
    attachments (decoded) — the letter itself included."""
    if package.get("resourceType") == "Bundle":
        return [e["resource"] for e in package.get("entry") or [] if isinstance(e.get("resource"), dict)]
    out: list[dict[str, Any]] = []
    for p in package.get("payload") or []:
        att = p.get("contentAttachment") or {}
        if att.get("contentType") in FHIR_TYPES and att.get("data"):
            try:
                found = json.loads(base64.b64decode(att["data"]))
            except (ValueError, TypeError):
                continue
            if isinstance(found, dict):
                out.append(found)
        elif att:
            out.append({"resourceType": "Attachment", **att})
    return out


def enclosures(package: dict[str, Any]) -> list[str]:
    """The kinds of supporting documents enclosed (the first document is the letter)."""
    kinds: list[str] = []
    documents = 0
    for r in _resources(package):
        rtype = r.get("resourceType")
        if rtype == "CarePlan":
            kind = "plan-of-care"
        elif rtype == "ClaimResponse" and r.get("use") == "preauthorization":
            kind = "authorization"
        elif rtype in ("DocumentReference", "Attachment"):
            documents += 1
            kind = "clinical-notes" if documents > 1 else ""
        else:
            kind = ""
        if kind and kind not in kinds:
            kinds.append(kind)
    return kinds


def patient_control_number(package: dict[str, Any]) -> str | None:
    """The claim the appeal is about, by its patient control number."""
    refs: list[dict[str, Any]] = list(package.get("about") or [])
    for r in _resources(package):
        if r.get("resourceType") == "DocumentReference":
            refs += (r.get("context") or {}).get("related") or []
    for ref in refs:
        ident = ref.get("identifier") or {}
        if str(ident.get("system", "")).endswith(PCN_SYSTEM_SUFFIX) and ident.get("value"):
            return str(ident["value"])
    return None


def package_key(package: dict[str, Any]) -> str:
    """The appeal's identity at the payer: its identifier, else its id (a resend is the same appeal)."""
    ident = package.get("identifier")
    if isinstance(ident, list):
        ident = ident[0] if ident else None
    return str((ident or {}).get("value") or package.get("id") or "")


def decide(engine: Engine, package: dict[str, Any]) -> AppealDecision:
    """Decide the appeal in ``package`` (the same package again: the same decision, once).
    Raises LookupError when it names no claim this payer adjudicated and that still stands."""
    key = package_key(package)
    with engine.ledger.lock:
        done = engine.ledger.appeals.get(key) if key else None
        if done is not None:
            return done
        pcn = patient_control_number(package)
        standing = [r for r in engine.ledger.standing.values() if pcn and r.claim.pcn == pcn]
        if not standing:
            raise LookupError("the appeal names no claim this payer adjudicated (patient control number)")
        original = standing[-1]
        kinds = enclosures(package)
        decision = _rule(engine, original, kinds)
        again = ClaimResult(original.claim, engine.icn(original.claim, f"appeal|{original.icn}"), reversal=original,
                            lines=_overturned(engine, original) if decision == "overturn" else list(original.lines))
        del engine.ledger.standing[original.icn]
        engine.ledger.standing[again.icn] = again
        found = AppealDecision(key, decision, again, kinds)
        if key:
            engine.ledger.appeals[key] = found
        return found


def _rule(engine: Engine, original: ClaimResult, kinds: list[str]) -> str:
    rules = engine.data.get("appeals") or {}
    carcs = {carc for lr in original.lines if lr.allowed is None for _, carc, _ in lr.adjustments}
    for rule in rules.get("rules") or []:
        if carcs & set(rule["carc"]) and set(rule.get("needs") or []) <= set(kinds):
            return str(rule["decision"])
    return str(rules.get("default", "uphold"))


def _overturned(engine: Engine, original: ClaimResult) -> list[Any]:
    """The original's lines, each denied one paid on its allowed amount with the member's share."""
    claim = original.claim
    payer = engine.payer(claim.payer_id) or {}
    member = engine.member(claim.member_id) or {}
    ben = engine.benefits(claim.member_id)
    coins = Decimal(str(member.get("coinsurance", 0)))
    copay_left = money(member.get("copay", 0)) if all(lr.allowed is None for lr in original.lines) else Decimal(0)
    lines = []
    for lr in original.lines:
        if lr.allowed is not None:
            lines.append(lr)
            continue
        paid, copay_left = engine.pay_line(claim, lr.line, engine._allowed(lr.line, payer), ben, coins, copay_left)
        lines.append(paid)
    return lines
