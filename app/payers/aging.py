"""A/R aging (``Claim/$ar-aging``): what payers still owe on the claims sent to them, per payer
and age bucket, as of a day.

A claim is in insurance A/R from the day it was sent until it is resolved. Its outstanding
amount is what it billed (``Claim.total``) less what the payer paid on it (its
ExplanationOfBenefits' payments, reversals negative, as ``reversals.paid_total``) less the
adjustments that close part of it (``data/aging.json``: contractual ``CO``, and ``PR``, which
moves to the patient's balance). Resolved, and left out: nothing left outstanding (paid in full,
or denied with the whole charge adjusted off), cancelled or entered-in-error (a void the payer
took), replaced by a sent correction, or a denial the biller wrote off (its ``denial`` Task
completed as ``written-off``). A reversal puts the money back in A/R whatever the lifecycle says.

As of a past day the report reads the claim's lifecycle history: a claim not yet sent on that
day is not in A/R, an answer recorded after it does not count, and neither does an EOB created
after it. The age counts from the first date of service (``basis=service``, the default) or the
day the claim was sent (``basis=submission``).

The claims still owed come from one statement over the search index (``aging_sql``); the
claims, EOBs and Tasks are read and walked in Python (``aging_by_reading``) only when the index
does not describe every claim yet (data written before its rows existed).
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from app.billing.ledger import ZERO, dec, eob_lines, money
from app.claims.by_lifecycle import claims_with_lifecycle, resources_of_type
from app.claims.lifecycle import rank
from app.claims.timely_filing import first_service_day
from app.fhir.errors import FhirError
from app.fhir.store import Reader
from app.payers import aging_sql
from fhir_mappings.vocabulary import CLAIM_FREQUENCY, CLAIM_LIFECYCLE_HISTORY

SETTINGS = Path(__file__).parent / "data" / "aging.json"
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
VOID = "8"


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


def _buckets() -> list[Bucket]:
    return [Bucket(b["label"], int(b["from"]), b["to"]) for b in settings()["buckets"]]


def bucket_for(buckets: list[Bucket], age: int) -> Bucket:
    return next(b for b in buckets if age >= b.low and (b.high is None or age <= b.high))


def _history(claim: dict[str, Any]) -> dict[str, date]:
    """lifecycle code -> the day it was reached."""
    for ext in claim.get("extension") or []:
        if ext.get("url") == CLAIM_LIFECYCLE_HISTORY:
            return {e["url"]: date.fromisoformat(e["valueInstant"][:10]) for e in ext.get("extension") or []
                    if e.get("url") and e.get("valueInstant")}
    return {}


def _prior_claims(claim: dict[str, Any]) -> list[str]:
    out = []
    for rel in claim.get("related") or []:
        ref = ((rel.get("claim") or {}).get("reference")) or ""
        if ref.startswith("Claim/") and any(c.get("code") == "prior"
                                            for c in (rel.get("relationship") or {}).get("coding") or []):
            out.append(ref.removeprefix("Claim/"))
    return out


def _is_void(claim: dict[str, Any]) -> bool:
    return any(e.get("url") == CLAIM_FREQUENCY and e.get("valueCode") == VOID for e in claim.get("extension") or [])


def _written_off(reader: Reader) -> set[str]:
    """Claims whose denial the biller wrote off (the ``denial`` Task completed as ``written-off``)."""
    return {(t.get("focus") or {}).get("reference", "").removeprefix("Claim/")
            for t in aging_sql.written_off_tasks(reader)
            if (t.get("businessStatus") or {}).get("text") == "written-off"}


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


def _settled_by_claim(reader: Reader, as_of: date) -> dict[str, Decimal]:
    """claim id -> paid + closing adjustments, from the EOBs created on or before ``as_of``."""
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for eob in resources_of_type(reader, "ExplanationOfBenefit"):
        if eob.get("created") and date.fromisoformat(eob["created"][:10]) > as_of:
            continue
        found = settled(eob)
        if found is not None:
            out[found[0]] += found[1]
    return out


@dataclass
class Aging:
    as_of: date
    basis: str
    payers: dict[str, tuple[dict[str, Any], list[Bucket]]]


def aging(reader: Reader, as_of: date, basis: str, *, claims: bool = True) -> Aging:
    """The tenant's insurance A/R on ``as_of``, per payer (``Claim.insurer``) and bucket (listing
    its claims unless not ``claims``): from the search index in one statement (``aging_sql``)
    when it describes every claim, else by reading."""
    cfg = settings()
    owed = None
    if aging_sql.usable(reader, cfg["sent"]):
        spans = [(b.label, b.low, b.high) for b in _buckets()]
        owed = aging_sql.owed(reader, as_of, basis, cfg["sent"], cfg["resolved_status"], spans,
                              _written_off(reader), claims=claims)
    if owed is None:
        return aging_by_reading(reader, as_of, basis)
    firsts: dict[str, int] = {}
    grouped: dict[str, list[Bucket]] = {}
    for o in owed:
        firsts[o.insurer] = min(firsts.get(o.insurer, o.first_pk), o.first_pk)
        bucket = next(b for b in grouped.setdefault(o.insurer, _buckets()) if b.label == o.bucket)
        bucket.count += o.count
        bucket.outstanding += o.outstanding
        if o.claim_id is not None:
            bucket.claims.append(o.claim_id)
    elements = aging_sql.insurer_elements(reader, firsts)
    return Aging(as_of, basis, {key: (elements[key], buckets) for key, buckets in grouped.items()})


def aging_by_reading(reader: Reader, as_of: date, basis: str) -> Aging:
    """``aging`` by reading every claim in a sent state and every EOB (the reference the index
    path is tested against, and the answer for data written before the index rows existed)."""
    cfg = settings()
    sent_rank = rank("submitted")
    claims = list(claims_with_lifecycle(reader, cfg["sent"]))
    replaced: set[str] = set()
    for claim in claims:
        history = _history(claim)
        if any(rank(code) >= sent_rank and day <= as_of for code, day in history.items()):
            replaced.update(_prior_claims(claim))
    settled = _settled_by_claim(reader, as_of)
    written_off = _written_off(reader)
    payers: dict[str, tuple[dict[str, Any], list[Bucket]]] = {}
    for claim in claims:
        cid = claim["id"]
        if (claim.get("status") in cfg["resolved_status"] or _is_void(claim) or cid in replaced
                or cid in written_off):
            continue
        history = _history(claim)
        sent_on = min((day for code, day in history.items() if rank(code) >= sent_rank), default=None)
        if sent_on is None or sent_on > as_of:
            continue
        start = sent_on if basis == "submission" else (first_service_day(claim) or sent_on)
        age = (as_of - start).days
        outstanding = dec(((claim.get("total") or {}).get("value"))) - settled.get(cid, ZERO)
        if age < 0 or outstanding <= 0:
            continue
        insurer = claim.get("insurer") or {}
        key = insurer.get("reference") or insurer.get("display") or "unknown"
        _, buckets = payers.setdefault(key, (insurer, _buckets()))
        bucket_for(buckets, age).add(cid, outstanding)
    return Aging(as_of, basis, payers)


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
    totals = _buckets()
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
