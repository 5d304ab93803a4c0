"""Prior authorizations and what the claims billed under them used.

An authorization is the payer's ``ClaimResponse`` with ``use = preauthorization`` (the Da Vinci
PAS shape): ``preAuthRef`` (the number quoted on claims, 837P REF*G1), ``preAuthPeriod``, and one
``addItem`` per limit. ``addItem.productOrService`` is either a CPT code (the limit counts that
code's units) or a therapy discipline of ``vocabulary.THERAPY_DISCIPLINE`` (the limit counts the
visits with a line of that discipline, a visit being one claim's date of service);
``addItem.quantity.value`` is the number authorized (else the ``value`` of its adjudication with
category ``benefit``; FHIR requires one adjudication per addItem, and the payer's decision goes
there). An authorization without ``addItem`` limits dates only.

Usage is never stored: it is computed from the claims billed under the authorization (a claim
whose ``insurance.preAuthRef`` names it), so computing it again gives the same numbers. A claim
counts unless it is cancelled or entered in error, a void (claim frequency 8), voided by one, or
replaced by a correction (the correction names it in ``related.claim``); a claim to a secondary
payer repeats the primary's lines and is not counted again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.inputs import follows_another_payer
from fhir_mappings.resolve import coding_code, day_of
from fhir_mappings.tables import CPT_SYSTEM, disciplines

ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
NOT_COUNTED = ("cancelled", "entered-in-error")


@dataclass(frozen=True)
class Limit:
    """One ``addItem``: what it counts (a CPT code's ``units`` or a discipline's ``visits``)."""

    index: int
    kind: str  # "units" | "visits"
    code: str  # CPT code or discipline (OT, PT, SLP)
    authorized: Decimal


@dataclass
class Usage:
    """What the counted claims used of each limit, and which claims were counted."""

    limits: list[Limit]
    used: dict[int, Decimal] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)

    def remaining(self, limit: Limit) -> Decimal:
        return limit.authorized - self.used.get(limit.index, Decimal(0))


def is_authorization(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "ClaimResponse" and resource.get("use") == "preauthorization"


def in_force(auth: dict[str, Any]) -> bool:
    """An active, approved authorization with a number."""
    return (auth.get("status") == "active" and auth.get("outcome") in ("complete", "partial")
            and bool(auth.get("preAuthRef")))


def period(auth: dict[str, Any]) -> tuple[date | None, date | None]:
    p = auth.get("preAuthPeriod") or {}
    return day_of(p.get("start")), day_of(p.get("end"))


def covers(auth: dict[str, Any], days: Iterable[date]) -> bool:
    start, end = period(auth)
    return all((start is None or start <= d) and (end is None or d <= end) for d in days)


def limits(auth: dict[str, Any]) -> list[Limit]:
    """The authorization's limits (``addItem`` with a known code and a quantity)."""
    out = []
    for n, item in enumerate(auth.get("addItem") or ()):
        concept = item.get("productOrService")
        value = authorized_count(item)
        if value is None:
            continue
        cpt = coding_code(concept, CPT_SYSTEM)
        disc = coding_code(concept, vocabulary.THERAPY_DISCIPLINE)
        if cpt:
            out.append(Limit(n, "units", cpt, Decimal(str(value))))
        elif disc:
            out.append(Limit(n, "visits", disc, Decimal(str(value))))
    return out


def authorized_count(item: dict[str, Any]) -> Any:
    """The visits or units an ``addItem`` authorizes: its quantity, else its benefit adjudication."""
    value = (item.get("quantity") or {}).get("value")
    if value is None:
        value = next((a.get("value") for a in item.get("adjudication") or ()
                      if coding_code(a.get("category"), ADJUDICATION) == "benefit"), None)
    return value


def problems(auth: dict[str, Any]) -> list[tuple[str, str]]:
    """What makes ``auth`` unusable: (FHIRPath expression, why). Empty when it is sound."""
    found = []
    if not auth.get("preAuthRef"):
        found.append(("ClaimResponse.preAuthRef", "An authorization needs the payer's number (preAuthRef)."))
    start, end = period(auth)
    if start is not None and end is not None and end < start:
        found.append(("ClaimResponse.preAuthPeriod", f"The period ends ({end}) before it starts ({start})."))
    known = set(disciplines())
    for n, item in enumerate(auth.get("addItem") or ()):
        concept = item.get("productOrService")
        disc = coding_code(concept, vocabulary.THERAPY_DISCIPLINE)
        if not coding_code(concept, CPT_SYSTEM) and disc not in known:
            found.append((f"ClaimResponse.addItem[{n}].productOrService",
                          f"Authorize a CPT code ({CPT_SYSTEM}) or a discipline ({', '.join(sorted(known))}, "
                          f"{vocabulary.THERAPY_DISCIPLINE})."))
        value = authorized_count(item)
        try:
            ok = value is not None and Decimal(str(value)) > 0 and Decimal(str(value)) == int(Decimal(str(value)))
        except ArithmeticError:
            ok = False
        if not ok:
            found.append((f"ClaimResponse.addItem[{n}].quantity.value",
                          "The visits or units authorized are a whole number above zero."))
    return found


def is_void(claim: dict[str, Any]) -> bool:
    return any(e.get("url") == vocabulary.CLAIM_FREQUENCY and e.get("valueCode") == "8"
               for e in claim.get("extension") or ())


def names_ref(claim: dict[str, Any], ref: str) -> bool:
    return any(ref in (i.get("preAuthRef") or ()) for i in claim.get("insurance") or ())


def _named(claim: dict[str, Any]) -> list[str]:
    return [str((r.get("claim") or {}).get("reference") or "").split("/")[-1]
            for r in claim.get("related") or () if (r.get("claim") or {}).get("reference")]


def counted_claims(claims: Iterable[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    """The claims that use authorization ``ref`` (see the module's rules), each once."""
    mine = [c for c in claims if c.get("resourceType", "Claim") == "Claim" and c.get("use", "claim") == "claim"
            and names_ref(c, ref) and not follows_another_payer(c)]
    alive = [c for c in mine if c.get("status") not in NOT_COUNTED]
    gone = {n for c in alive for n in _named(c)}  # replaced by a correction, or voided
    return sorted((c for c in alive if not is_void(c) and c.get("id") not in gone), key=lambda c: str(c.get("id")))


def claim_use(claim: dict[str, Any], limit: Limit) -> Decimal:
    """What one claim uses of ``limit``: its units of the code, or its visits of the discipline."""
    start = day_of((claim.get("billablePeriod") or {}).get("start"))
    modifier_of = {d.modifier: d.code for d in disciplines().values()}
    units = Decimal(0)
    days: set[date | None] = set()
    for item in claim.get("item") or ():
        day = day_of(item.get("servicedDate")) or start
        if limit.kind == "units":
            if coding_code(item.get("productOrService"), CPT_SYSTEM) == limit.code:
                units += Decimal(str((item.get("quantity") or {}).get("value", 1)))
        else:
            mods = {c.get("code") for m in item.get("modifier") or () for c in m.get("coding") or ()}
            if any(modifier_of.get(m) == limit.code for m in mods):
                days.add(day)
    return units if limit.kind == "units" else Decimal(len(days))


def usage(auth: dict[str, Any], claims: Iterable[dict[str, Any]]) -> Usage:
    """What the claims billed under ``auth`` used of each of its limits."""
    found = Usage(limits(auth))
    ref = auth.get("preAuthRef")
    if not ref:
        return found
    counted = counted_claims(claims, ref)
    found.claims = [str(c.get("id")) for c in counted]
    for limit in found.limits:
        found.used[limit.index] = sum((claim_use(c, limit) for c in counted), Decimal(0))
    return found


def unit_word(limit: Limit, n: Decimal) -> str:
    word = "visit" if limit.kind == "visits" else "unit"
    return f"{n} {word}{'' if n == 1 else 's'}"
