"""The A/R aging's claims in one SQL statement over the search index, instead of reading and
parsing every claim and EOB (``aging`` answers the same; this is how it answers fast).

Every input of the report has an index row written with the resource: the lifecycle and status
tokens, the claim frequency (a void is ``8``), the claims a claim ``replaces``, the days it
reached a ``sent`` state, its service dates and billable period, its ``billed`` amount, and each
ExplanationOfBenefit's ``settled`` amount, ``claim`` and ``created`` day. The statement joins
them per claim and keeps the claims still owed as of the day; what is left for Python is the
age bucket of each and the written-off denials (a few Tasks).

Index rows describe only what was written since they existed: a database holding claims or EOBs
written before (no ``sent`` or ``settled`` rows) is answered by the reading path instead, which
``usable`` tells.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa

from app.db import ResourceRow, SearchDate, SearchNumber, SearchReference, SearchToken
from app.fhir.dates import MIN, UTC
from app.fhir.extract import NUMBER_SCALE
from app.fhir.store import Reader

R = ResourceRow.__table__
TOKEN = SearchToken.__table__
DATE = SearchDate.__table__
REF = SearchReference.__table__
NUMBER = SearchNumber.__table__
VOID = "8"


@dataclass(frozen=True)
class Owed:
    """One claim still owed (``claims``), or one payer's bucket (``summary``: ``claim_id`` None)."""

    claim_id: str | None
    insurer: str  # the reference, "Organization/id"
    first_pk: int  # the payer's first claim row (the report shows the insurer element of it)
    bucket: str
    count: int
    outstanding: Decimal


Bucket = tuple[str, int, int | None]  # label, from day, to day (None: no upper end)


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def _token(tenant: str, rtype: str, param: str, codes: list[str]) -> sa.Select:
    return sa.select(TOKEN.c.res_pk).where(TOKEN.c.tenant_id == tenant, TOKEN.c.type == rtype,
                                           TOKEN.c.param == param, TOKEN.c.code.in_(codes))


def _first(tenant: str, param: str, *extra: sa.ColumnElement) -> sa.Subquery:
    d = DATE.alias(f"d_{param.replace('-', '_')}")
    return (sa.select(d.c.res_pk, sa.func.min(d.c.start).label("start"))
            .where(d.c.tenant_id == tenant, d.c.type == "Claim", d.c.param == param, *[e(d) for e in extra])
            .group_by(d.c.res_pk).subquery())


def usable(reader: Reader, sent: list[str]) -> bool:
    """Whether the index describes every claim and EOB the report reads: no claim in a sent state
    without any of the rows written since (neither ``billed`` nor ``sent``), and every active EOB
    on a claim with its ``settled`` row."""
    t = reader.tenant_id
    claims = _token(t, "Claim", "lifecycle", sent)
    billed = sa.exists().where(NUMBER.c.res_pk == R.c.pk, NUMBER.c.param == "billed")
    sent_days = sa.exists().where(DATE.c.res_pk == R.c.pk, DATE.c.param == "sent")
    bare = reader.conn.execute(sa.select(R.c.pk).where(
        R.c.tenant_id == t, R.c.type == "Claim", R.c.deleted.is_(False), R.c.pk.in_(claims),
        ~billed, ~sent_days).limit(1)).first()
    if bare is not None:
        return False
    active = _token(t, "ExplanationOfBenefit", "status", ["active"])
    on_claims = reader.conn.execute(sa.select(sa.func.count(sa.distinct(REF.c.res_pk))).where(
        REF.c.tenant_id == t, REF.c.type == "ExplanationOfBenefit", REF.c.param == "claim",
        REF.c.target_type == "Claim", REF.c.res_pk.in_(active))).scalar_one()
    settled = reader.conn.execute(sa.select(sa.func.count(sa.distinct(NUMBER.c.res_pk))).where(
        NUMBER.c.tenant_id == t, NUMBER.c.type == "ExplanationOfBenefit", NUMBER.c.param == "settled")).scalar_one()
    return on_claims == settled


def owed(reader: Reader, as_of: date, basis: str, sent: list[str], resolved: list[str], buckets: list[Bucket],
         written_off: set[str], *, claims: bool = True) -> list[Owed] | None:
    """The claims in A/R on ``as_of`` with their age bucket (or, not ``claims``, the count and
    amount per payer and bucket), or None when one of them has no insurer reference to group it
    by (the reading path answers then). The amount owed is the stored ``outstanding`` unless an
    EOB is dated after ``as_of``; then the EOBs up to that day are summed."""
    t, end = reader.tenant_id, _day_end(as_of)
    in_sent_state = _token(t, "Claim", "lifecycle", sent)
    sent_on = _first(t, "sent")
    service = _first(t, "service-date", lambda d: d.c.start > MIN)
    billable = _first(t, "billable-start")
    insurer = REF.alias("insurer")
    replacing = REF.alias("replacing")
    replaced = (sa.select(replacing.c.target_id)
                .join(sent_on, sent_on.c.res_pk == replacing.c.res_pk)
                .where(replacing.c.tenant_id == t, replacing.c.type == "Claim", replacing.c.param == "replaces",
                       replacing.c.target_type == "Claim", replacing.c.res_pk.in_(in_sent_state), sent_on.c.start < end))
    joined = (R.join(sent_on, sent_on.c.res_pk == R.c.pk)
              .outerjoin(service, service.c.res_pk == R.c.pk)
              .outerjoin(billable, billable.c.res_pk == R.c.pk)
              .outerjoin(insurer, sa.and_(insurer.c.res_pk == R.c.pk, insurer.c.param == "insurer")))
    if _answered_later(reader, end):
        billed = NUMBER.alias("billed")
        eob, amount, created = REF.alias("eob"), NUMBER.alias("amount"), DATE.alias("created")
        # per claim, through the index on the EOBs' claim reference: a grouped subquery joined by
        # claim id let the planner (misjudging how few claims pass) loop over it once per claim
        settled = (sa.select(sa.func.coalesce(sa.func.sum(amount.c.value), 0))
                   .select_from(eob.join(amount, sa.and_(amount.c.res_pk == eob.c.res_pk, amount.c.param == "settled"))
                                .outerjoin(created, sa.and_(created.c.res_pk == eob.c.res_pk,
                                                            created.c.param == "created")))
                   .where(eob.c.tenant_id == t, eob.c.type == "ExplanationOfBenefit", eob.c.param == "claim",
                          eob.c.target_type == "Claim", eob.c.target_id == R.c.id,
                          sa.or_(created.c.start.is_(None), created.c.start < end))
                   .scalar_subquery())
        joined = joined.outerjoin(billed, sa.and_(billed.c.res_pk == R.c.pk, billed.c.param == "billed"))
        outstanding = sa.func.coalesce(billed.c.value, 0) - settled
    else:  # every answer counts: the amount kept current at write time
        stored = NUMBER.alias("stored")
        joined = joined.join(stored, sa.and_(stored.c.res_pk == R.c.pk, stored.c.param == "outstanding"))
        outstanding = stored.c.value
    start = sent_on.c.start if basis == "submission" else sa.func.coalesce(service.c.start, billable.c.start,
                                                                          sent_on.c.start)
    bucket = sa.case(*[(sa.and_(start < _day_end(as_of - timedelta(days=low)),
                                *([start >= _day_end(as_of - timedelta(days=high + 1))] if high is not None else [])),
                        label) for label, low, high in buckets], else_=None)
    where = [R.c.tenant_id == t, R.c.type == "Claim", R.c.deleted.is_(False), R.c.pk.in_(in_sent_state),
             R.c.pk.not_in(_token(t, "Claim", "status", resolved)),
             R.c.pk.not_in(_token(t, "Claim", "frequency", [VOID])),
             R.c.id.not_in(replaced), sent_on.c.start < end, start < end, outstanding > 0]
    if written_off:
        where.append(R.c.id.not_in(sorted(written_off)))
    if claims:
        stmt = sa.select(R.c.id, insurer.c.target_type, insurer.c.target_id, R.c.pk.label("first_pk"),
                         bucket.label("bucket"), sa.literal(1).label("n"), outstanding.label("owed"))
    else:
        stmt = (sa.select(sa.literal(None).label("id"), insurer.c.target_type, insurer.c.target_id,
                          sa.func.min(R.c.pk).label("first_pk"), bucket.label("bucket"), sa.func.count().label("n"),
                          sa.func.sum(outstanding).label("owed"))
                .group_by(insurer.c.target_type, insurer.c.target_id, bucket))
    out: list[Owed] = []
    for row in reader.conn.execute(stmt.select_from(joined).where(*where)):
        if row.target_id is None:
            return None
        out.append(Owed(row.id, f"{row.target_type}/{row.target_id}", int(row.first_pk), row.bucket, int(row.n),
                        Decimal(int(row.owed)) / NUMBER_SCALE))
    return out


def _answered_later(reader: Reader, end: datetime) -> bool:
    """Whether an EOB of the tenant is dated on or after ``end`` (a report of a past day)."""
    return reader.conn.execute(sa.select(DATE.c.pk).where(
        DATE.c.tenant_id == reader.tenant_id, DATE.c.type == "ExplanationOfBenefit", DATE.c.param == "created",
        DATE.c.start >= end).limit(1)).first() is not None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insurer_elements(reader: Reader, first_pks: dict[str, int]) -> dict[str, dict]:  # type: ignore[type-arg]
    """reference -> the ``Claim.insurer`` element of the payer's first claim (as the report shows it)."""
    import orjson

    rows = reader.conn.execute(sa.select(R.c.pk, R.c.content).where(R.c.pk.in_(sorted(set(first_pks.values())))))
    by_pk = {pk: (orjson.loads(content).get("insurer") or {}) for pk, content in rows}
    return {ref: by_pk.get(pk) or {"reference": ref} for ref, pk in first_pks.items()}


def written_off_tasks(reader: Reader) -> list[dict]:  # type: ignore[type-arg]
    """The completed ``denial`` Tasks whose text mentions ``written-off`` (a superset of those
    completed as written off, for the caller to check): only those are parsed, not every closed
    denial of the practice."""
    import orjson

    t = reader.tenant_id
    rows = reader.conn.execute(sa.select(R.c.content).where(
        R.c.tenant_id == t, R.c.type == "Task", R.c.deleted.is_(False),
        R.c.pk.in_(_token(t, "Task", "code", ["denial"])), R.c.pk.in_(_token(t, "Task", "status", ["completed"])),
        sa.cast(R.c.content, sa.Text).like("%written-off%")))
    return [orjson.loads(content) for (content,) in rows]
