"""A/R aging (``Claim/$ar-aging``): what payers still owe on the claims sent to them, per payer
and age bucket, as of a day.

A claim is in insurance A/R from the day it was first sent until it leaves it. Its outstanding
amount is what it billed (``Claim.total``) less what its payer's answers settle: their payments
(reversals negative) and the adjustments that close part of it (``data/aging.json``: contractual
``CO``, and ``PR``, which moves to the patient's balance). It leaves A/R when nothing is left
outstanding (paid in full, or denied with the whole charge adjusted off), when the payer takes
a void of it, when a correction replacing it is sent, or when the biller writes its denial off
(its ``denial`` Task completed as ``written-off``); a claim entered in error never counts. A
reversal puts the money back in A/R whatever the lifecycle says. Each of these is dated, so a
report of a past day counts what was true then: not yet sent, not yet paid or not yet replaced.

The age counts from the first date of service (``basis=service``, the default; the day sent
when the claim has none) or the day the claim was sent (``basis=submission``). The report is
one statement over the claim facts, the rows the A/R KPIs read too
(``app.measures.ar_aging``); this module parses the request and writes the answer.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from app.billing.ledger import ZERO, dec, eob_lines, money
from app.fhir.errors import FhirError

SETTINGS = Path(__file__).parent / "data" / "aging.json"
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
UNKNOWN_PAYER = "unknown"  # claims naming no insurer


@lru_cache(maxsize=1)
def settings() -> dict[str, Any]:
    return json.loads(SETTINGS.read_text())


def parse_request(params: dict[str, str], today: date) -> tuple[date, str]:
    """(as-of day, basis) from the query, or 400 naming the parameter that is wrong."""
    raw = params.get("asOf")
    as_of = today
    if raw is not None:
        try:
            if not ISO_DATE.fullmatch(raw):
                raise ValueError(raw)
            as_of = date.fromisoformat(raw)
        except ValueError:
            raise FhirError(400, "invalid", f"asOf must be a calendar date (YYYY-MM-DD), not {raw!r}",
                            expression=["asOf"]) from None
    basis = params.get("basis") or settings()["default_basis"]
    if basis not in settings()["bases"]:
        raise FhirError(400, "invalid", f"basis must be one of {', '.join(settings()['bases'])}, not {basis!r}",
                        expression=["basis"])
    return as_of, basis


@dataclass
class Bucket:
    label: str
    low: int
    high: int | None
    count: int = 0
    outstanding: Decimal = ZERO
    claims: list[str] = field(default_factory=list)

    def add(self, claim_id: str, amount: Decimal) -> None:
        self.count += 1
        self.outstanding += amount
        self.claims.append(claim_id)


def new_buckets() -> list[Bucket]:
    return [Bucket(b["label"], int(b["from"]), b["to"]) for b in settings()["buckets"]]


def settled(eob: dict[str, Any]) -> tuple[str, Decimal] | None:
    """(claim id, what the EOB settles on it: its payment plus its closing adjustments), or None
    for an EOB that settles nothing (not active, or on no claim of ours). A reversal's amounts
    are negative, so it puts the money back."""
    ref = ((eob.get("claim") or {}).get("reference")) or ""
    if eob.get("status") != "active" or not ref.startswith("Claim/"):
        return None
    closing = set(settings()["closing_adjustment_groups"])
    claim_id = ref.removeprefix("Claim/")
    amount = dec(((eob.get("payment") or {}).get("amount") or {}).get("value"))
    for line in eob_lines(eob, claim_id):
        amount += sum((p.amount for p in (*line.adjustments, *line.patient) if p.group in closing), ZERO)
    return claim_id, amount


def settled_index(eob: dict[str, Any]) -> list[tuple[str, Decimal]]:
    """The store's computed index of an EOB (``ExplanationOfBenefit?settled=``): what it settles,
    which the Claim's ``outstanding`` search parameter subtracts from the billed amount."""
    found = settled(eob)
    return [("settled", found[1])] if found is not None else []


@dataclass
class Aging:
    as_of: date
    basis: str
    payers: dict[str, tuple[dict[str, Any], list[Bucket]]]


def parse_detail(params: dict[str, str]) -> bool:
    """Whether each bucket lists its claims (``detail=claims``, the default) or only its count,
    amount and search (``detail=summary``: a few hundred bytes however many claims)."""
    detail = params.get("detail") or "claims"
    if detail not in ("claims", "summary"):
        raise FhirError(400, "invalid", f"detail must be claims or summary, not {detail!r}", expression=["detail"])
    return detail == "claims"


def drill_search(reference: str | None, bucket: Bucket, as_of: date, basis: str) -> str:
    """The Claim search for a bucket today: the payer's claims in a sent state, not cancelled,
    still owed, whose first date of service (or submission) falls in the bucket's days. It
    finds the bucket's claims, and also any void, replaced or written-off claim in that range
    that still shows a balance (the report leaves those out)."""
    param = "service-date" if basis == "service" else "submitted"
    query = [f"lifecycle={','.join(settings()['sent'])}", "status=active,draft", "outstanding=gt0",
             f"{param}=le{(as_of - timedelta(days=bucket.low)).isoformat()}"]
    if bucket.high is not None:
        query.append(f"{param}=ge{(as_of - timedelta(days=bucket.high)).isoformat()}")
    if reference:
        query.insert(0, f"insurer={reference}")
    return "Claim?" + "&".join(query)


def _bucket_parts(buckets: list[Bucket], *, claims: bool = True,
                  search: Callable[[Bucket], str] | None = None) -> list[dict[str, Any]]:
    out = []
    for b in buckets:
        part: list[dict[str, Any]] = [{"name": "range", "valueString": b.label},
                                      {"name": "fromDays", "valueInteger": b.low}]
        if b.high is not None:
            part.append({"name": "toDays", "valueInteger": b.high})
        part += [{"name": "count", "valueInteger": b.count}, {"name": "outstanding", "valueMoney": money(b.outstanding)}]
        if search is not None:
            part.append({"name": "search", "valueUri": search(b)})
        if claims:
            part += [{"name": "claim", "valueReference": {"reference": f"Claim/{cid}"}} for cid in sorted(b.claims)]
        out.append({"name": "bucket", "part": part})
    return out


def _summary(buckets: list[Bucket]) -> list[dict[str, Any]]:
    return [{"name": "count", "valueInteger": sum(b.count for b in buckets)},
            {"name": "outstanding", "valueMoney": money(sum((b.outstanding for b in buckets), ZERO))}]


def parameters(report: Aging, *, claims: bool = True, today: date | None = None) -> dict[str, Any]:
    """The report as ``Parameters``: per payer its buckets (each with count, outstanding and the
    Claims in it, unless not ``claims``), then the same buckets over all payers. As of ``today``
    each bucket also carries its drill-down ``search`` (``drill_search``)."""
    live = today is not None and report.as_of == today
    params: list[dict[str, Any]] = [{"name": "asOf", "valueDate": report.as_of.isoformat()},
                                    {"name": "basis", "valueCode": report.basis}]
    totals = new_buckets()
    for key in sorted(report.payers):
        insurer, buckets = report.payers[key]
        payer: dict[str, Any] = ({"name": "insurer", "valueReference": insurer} if insurer
                                 else {"name": "insurer", "valueString": key})
        search = (lambda b, ref=insurer.get("reference"): drill_search(ref, b, report.as_of, report.basis)) \
            if live and insurer.get("reference") else None
        params.append({"name": "payer", "part": [payer, *_summary(buckets),
                                                 *_bucket_parts(buckets, claims=claims, search=search)]})
        for total, b in zip(totals, buckets):
            total.count += b.count
            total.outstanding += b.outstanding
            total.claims += b.claims
    search = (lambda b: drill_search(None, b, report.as_of, report.basis)) if live else None
    params.append({"name": "total", "part": [*_summary(totals), *_bucket_parts(totals, claims=claims, search=search)]})
    return {"resourceType": "Parameters", "parameter": params}
