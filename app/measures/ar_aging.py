"""The A/R aging (``Claim/$ar-aging``, ``app.payers.aging``) in one SQL statement over the claim facts (``app.measures.tables``):
one row per claim, kept in the writing transaction, so the report reads no resource but the
first claim of each payer (to show its insurer as the claims name it).

The claims in A/R are the ``ar`` CTE the A/R KPIs use (``app.measures.queries.outstanding``),
so the aging and days in A/R never disagree. For today (no remittance dated after the day
asked) what each claim has been paid is its stored ``settled_cents``; for a past day the
remittances up to that day are summed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.db import ResourceRow
from app.measures.queries import no_jit, outstanding
from app.measures.tables import REMIT
from app.fhir.store import Reader
from app.payers import aging

R = ResourceRow.__table__
Span = tuple[str, int, int | None]  # a bucket: label, from day, to day (None: no upper end)


@dataclass
class Owed:
    """One payer's bucket: its claims' count and amount, its first claim, and (when asked) the claims."""

    payer: str | None  # Claim.insurer's reference, else its display
    bucket: str
    count: int
    cents: int
    first_claim: str  # the payer's first claim id here (the report shows the insurer element of it)
    claims: list[str] = field(default_factory=list)

    @property
    def outstanding(self) -> Decimal:
        return Decimal(self.cents) / 100


def _answered_later(conn: Connection, tenant_id: str, as_of: date) -> bool:
    return conn.execute(sa.select(REMIT.c.eob_id).where(
        REMIT.c.tenant_id == tenant_id, REMIT.c.posted_on > as_of).limit(1)).first() is not None


def owed(conn: Connection, tenant_id: str, as_of: date, basis: str, buckets: list[Span], *,
         claims: bool = True) -> list[Owed]:
    """The claims in A/R on ``as_of`` per payer and age bucket, aged from the first date of service
    (else the day sent) or from the day sent (``basis=submission``); without ``claims``, the
    count and amount per payer and bucket only. Either way the database groups and sums."""
    start = "f_start" if basis == "service" else "submitted_on"
    params: dict[str, Any] = {"t": tenant_id, "e": as_of}
    whens = []
    for n, (label, low, high) in enumerate(buckets):
        params[f"hi{n}"], params[f"label{n}"] = as_of - timedelta(days=low), label
        cond = f"{start} <= :hi{n}"
        if high is not None:
            params[f"lo{n}"] = as_of - timedelta(days=high)
            cond += f" AND {start} >= :lo{n}"
        whens.append(f"WHEN {cond} THEN :label{n}")
    bucket = f"CASE {' '.join(whens)} END"
    aged = (f"WITH {outstanding(conn, stored=not _answered_later(conn, tenant_id, as_of))}, "
            "aged AS (SELECT claim_id, payer, owed, submitted_on, COALESCE(service_date, submitted_on) AS f_start "
            "FROM ar WHERE owed > 0), "
            f"bucketed AS (SELECT claim_id, payer, owed, {bucket} AS bucket FROM aged WHERE {start} <= :e) ")
    no_jit(conn)
    listed = ""
    if claims:  # each bucket's claims as one string (FHIR ids hold no comma): a row per bucket, not per claim
        listed = (", string_agg(claim_id, ',' ORDER BY claim_id)" if conn.dialect.name == "postgresql"
                  else ", group_concat(claim_id, ',')")
    sql = aged + (f"SELECT payer, bucket, COUNT(*), SUM(owed), MIN(claim_id){listed} FROM bucketed "
                  "GROUP BY payer, bucket")
    return [Owed(row[0], row[1], int(row[2]), int(row[3]), row[4], row[5].split(",") if claims else [])
            for row in conn.execute(sa.text(sql), params)]


def insurer_elements(conn: Connection, tenant_id: str, first_claims: dict[str, str]) -> dict[str, dict[str, Any]]:
    """payer key -> the ``Claim.insurer`` element of its first claim (as the report shows it)."""
    rows = conn.execute(sa.select(R.c.id, R.c.content).where(
        R.c.tenant_id == tenant_id, R.c.type == "Claim", R.c.id.in_(sorted(set(first_claims.values())))))
    by_id = {rid: (orjson.loads(content).get("insurer") or {}) for rid, content in rows}
    return {key: by_id.get(cid) or ({"reference": key} if "/" in key else {"display": key})
            for key, cid in first_claims.items()}


def report(reader: Reader, as_of: date, basis: str, *, claims: bool = True) -> aging.Aging:
    """The tenant's insurance A/R on ``as_of``, per payer (``Claim.insurer``) and bucket, listing
    each bucket's claims unless not ``claims``."""
    spans = [(b.label, b.low, b.high) for b in aging.new_buckets()]
    firsts: dict[str, str] = {}
    grouped: dict[str, list[aging.Bucket]] = {}
    for o in owed(reader.conn, reader.tenant_id, as_of, basis, spans, claims=claims):
        key = o.payer or aging.UNKNOWN_PAYER
        firsts[key] = min(firsts.get(key, o.first_claim), o.first_claim)
        if key not in grouped:
            grouped[key] = aging.new_buckets()
        bucket = next(b for b in grouped[key] if b.label == o.bucket)
        bucket.count += o.count
        bucket.outstanding += o.outstanding
        bucket.claims += o.claims
    known = {key: cid for key, cid in firsts.items() if key != aging.UNKNOWN_PAYER}
    elements = insurer_elements(reader.conn, reader.tenant_id, known)
    return aging.Aging(as_of, basis, {key: (elements.get(key, {}), buckets) for key, buckets in grouped.items()})
