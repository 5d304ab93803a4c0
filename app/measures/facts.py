"""Keeping the claim facts tables (``app.measures.tables``) in step with the store.

``on_write`` is a store write observer: a write of a Claim, an ExplanationOfBenefit, a
CoverageEligibilityResponse or a Task replaces that resource's fact rows in the same
transaction, so the KPIs never lag the claims. ``noting_client_writes`` wraps the Claim guard so
a claim a person or client application wrote carries that fact (a manual change). ``rebuild``
makes every row again from the stored resources (and, for "ever held by the scrubber", the
claims' stored versions): the same rows the writes made.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Iterator

import orjson
import sqlalchemy as sa

from app.billing.ledger import eob_lines
from app.db import dialect_insert
from app.claims.lifecycle import VOID_TAKEN, lifecycle, rank, voided_by
from app.claims.timely_filing import first_service_day
from app.fhir.extract import reference_target
from app.fhir.store import Guard, NeedsTransaction, Reader, Unit, Version
from app.measures.tables import CLAIM, CODE, ELIGIBILITY, REMIT, WRITEOFF
from app.outbox import QueuedJob
from app.payers import aging
from app.payers.reversals import REVERSAL, _status as eob_claim_status
from app.fhir.dates import instant
from fhir_mappings.vocabulary import (
    CLAIM_FREQUENCY, CLAIM_LIFECYCLE_HISTORY, CLAIM_MANUAL_CHANGE, PAYMENT_APPLICATION,
)
from payer_adapters.x12 import denials as denial_rules

TYPES = frozenset({"Claim", "ExplanationOfBenefit", "CoverageEligibilityResponse", "Task"})
DISCIPLINES = frozenset({"GO", "GP", "GN"})
FRONT_ACCEPTED = ("acknowledged", "accepted", "paid", "partially-paid", "denied")
ADJUDICATED = ("paid", "partially-paid", "denied")


def cents(value: Any) -> int:
    return int((Decimal(str(value if value is not None else 0)) * 100).to_integral_value())


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text and len(text) >= 10 else None


def _ref_id(ref: dict[str, Any] | None, rtype: str) -> str | None:
    target = reference_target(((ref or {}).get("reference")) or "")
    return target[1] if target and target[0] == rtype else None


def history(claim: dict[str, Any]) -> dict[str, date]:
    """lifecycle code -> the day it was first reached."""
    for ext in claim.get("extension") or []:
        if ext.get("url") == CLAIM_LIFECYCLE_HISTORY:
            return {e["url"]: d for e in ext.get("extension") or [] if e.get("url") and (d := _day(e.get("valueInstant")))}
    return {}


def _first(hist: dict[str, date], codes: tuple[str, ...]) -> tuple[date | None, str | None]:
    found = sorted((d, code) for code, d in hist.items() if code in codes)
    return (found[0][0], found[0][1]) if found else (None, None)


def clinician(claim: dict[str, Any]) -> str | None:
    """The rendering clinician: the careTeam member with role ``primary``, else the first, else the provider."""
    team = claim.get("careTeam") or []
    primary = [m for m in team if any(c.get("code") == "primary" for c in (m.get("role") or {}).get("coding") or [])]
    for member in [*primary, *team]:
        ref = (member.get("provider") or {}).get("reference")
        if ref:
            return str(ref)[:200]
    return ((claim.get("provider") or {}).get("reference") or None)


def _prior(claim: dict[str, Any]) -> str | None:
    for rel in claim.get("related") or []:
        if any(c.get("code") == "prior" for c in (rel.get("relationship") or {}).get("coding") or []):
            return _ref_id(rel.get("claim"), "Claim")
    return None


def claim_rows(claim: dict[str, Any], manual: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The claim's ``claim_fact`` row (without tenant) and its ``claim_code_fact`` rows."""
    hist = history(claim)
    sent_rank = rank("submitted")
    submitted_on = min((d for code, d in hist.items() if rank(code) >= sent_rank), default=None)
    is_void = any(e.get("url") == CLAIM_FREQUENCY and e.get("valueCode") == "8" for e in claim.get("extension") or [])
    prior = voided_by(claim) if is_void else _prior(claim)
    if is_void:
        replaces_on, _ = _first(hist, tuple(VOID_TAKEN))
    else:
        replaces_on = submitted_on
    adjudicated_on, first_outcome = _first(hist, ADJUDICATED)
    insurer = claim.get("insurer") or {}
    row = {
        "claim_id": claim["id"], "patient_id": _ref_id(claim.get("patient"), "Patient"),
        "payer": (insurer.get("reference") or insurer.get("display") or None),
        "clinician": clinician(claim), "service_date": first_service_day(claim),
        "charge_cents": cents((claim.get("total") or {}).get("value")),
        "is_void": is_void, "excluded": claim.get("status") == "entered-in-error",
        "cancelled": claim.get("status") == "cancelled",
        "prior_claim_id": prior, "replaces_on": replaces_on if prior else None,
        "submitted_on": submitted_on, "front_accepted_on": _first(hist, FRONT_ACCEPTED)[0],
        "rejected_on": hist.get("rejected"), "adjudicated_on": adjudicated_on, "first_outcome": first_outcome,
        "manual": manual or lifecycle(claim) == "draft" or manual_change(claim),
        "pre_auth": any(ins.get("preAuthRef") for ins in claim.get("insurance") or []),
    }
    if row["payer"]:
        row["payer"] = str(row["payer"])[:200]
    codes: set[tuple[str, str]] = set()
    for item in claim.get("item") or []:
        for c in (item.get("productOrService") or {}).get("coding") or []:
            if c.get("code"):
                codes.add(("cpt", str(c["code"])[:32]))
        for m in item.get("modifier") or []:
            for c in m.get("coding") or []:
                if c.get("code") in DISCIPLINES:
                    codes.add(("discipline", c["code"]))
    return row, [{"claim_id": claim["id"], "kind": k, "value": v} for k, v in sorted(codes)]


def _applied(eob: dict[str, Any]) -> bool:
    marks = [e.get("valueCode") for e in eob.get("extension") or [] if e.get("url") == PAYMENT_APPLICATION]
    return eob.get("status") == "active" and (not marks or marks[-1] == "applied")


def remit_row(eob: dict[str, Any]) -> dict[str, Any] | None:
    """The EOB's ``remit_fact`` row, or None when it is on no claim of ours."""
    claim_id = _ref_id(eob.get("claim"), "Claim")
    posted = _day(eob.get("created"))
    if claim_id is None or posted is None:
        return None
    closing = set(aging.settings()["closing_adjustment_groups"])
    contractual = closing_total = denied = 0
    auth = False
    for line in eob_lines(eob, claim_id):
        for part in (*line.adjustments, *line.patient):
            if part.group == "CO":
                contractual += cents(part.amount)
            if part.group in closing:
                closing_total += cents(part.amount)
            if part.reason and denial_rules.classify(part.group, part.reason).category == "authorization":
                auth = True
        if line.sequence and line.charge > 0 and line.insurance_paid <= 0:
            denied += cents(line.charge)
    return {"eob_id": eob["id"], "claim_id": claim_id, "posted_on": posted, "active": _applied(eob),
            "reversal": eob_claim_status(eob) == REVERSAL,
            "paid_cents": cents(((eob.get("payment") or {}).get("amount") or {}).get("value")),
            "contractual_cents": contractual, "closing_cents": closing_total, "denied_cents": denied,
            "auth_denial": auth}


def eligibility_row(response: dict[str, Any]) -> dict[str, Any]:
    return {"response_id": response["id"], "patient_id": _ref_id(response.get("patient"), "Patient"),
            "answered_on": _day(response.get("created")), "ok": response.get("outcome") in ("complete", "partial")}


def writeoff_row(task: dict[str, Any]) -> dict[str, Any] | None:
    """A denial Task completed as written off, on its claim; else None."""
    if not any(c.get("code") == "denial" for c in (task.get("code") or {}).get("coding") or []):
        return None
    if task.get("status") != "completed" or (task.get("businessStatus") or {}).get("text") != "written-off":
        return None
    claim_id = _ref_id(task.get("focus"), "Claim")
    when = _day(task.get("lastModified")) or _day((task.get("meta") or {}).get("lastUpdated"))
    if claim_id is None or when is None:
        return None
    return {"task_id": task["id"], "claim_id": claim_id, "written_off_on": when}


# -- writing ------------------------------------------------------------------------------
_KEYS = {"ExplanationOfBenefit": (REMIT, "eob_id"), "CoverageEligibilityResponse": (ELIGIBILITY, "response_id"),
         "Task": (WRITEOFF, "task_id")}


_STATEMENTS: dict[str, Any] = {}


def _statement(conn: sa.Connection, name: str) -> Any:
    """The statements the writes run, built once per dialect (so each is compiled once)."""
    key = f"{conn.dialect.name}:{name}"
    if key not in _STATEMENTS:
        if name == "claim":
            ins = dialect_insert(conn, CLAIM)
            update = {c.name: ins.excluded[c.name] for c in CLAIM.c
                      if c.name not in ("tenant_id", "claim_id", "manual", "settled_cents")}
            update["manual"] = sa.or_(CLAIM.c.manual, ins.excluded.manual)  # once true, stays true
            _STATEMENTS[key] = ins.on_conflict_do_update(index_elements=["tenant_id", "claim_id"], set_=update)
        elif name.startswith("upsert:"):
            table, column = _KEYS[name.split(":", 1)[1]]
            ins = dialect_insert(conn, table)
            _STATEMENTS[key] = ins.on_conflict_do_update(
                index_elements=["tenant_id", column],
                set_={c.name: ins.excluded[c.name] for c in table.c if c.name not in ("tenant_id", column)})
        else:
            table, column = _KEYS[name]
            _STATEMENTS[key] = table.delete().where(table.c.tenant_id == sa.bindparam("t"),
                                                    table.c[column] == sa.bindparam("rid"))
    return _STATEMENTS[key]


@dataclass
class _Pending:
    """A claim's fact rows waiting for the end of its transaction."""
    row: dict[str, Any]
    codes: list[dict[str, Any]]
    rewrite_codes: bool  # its codes changed in this transaction
    fresh: bool  # created in this transaction: no earlier code rows to delete


PENDING = "claim-facts"


def _note_claim(unit: Unit, claim: dict[str, Any], manual: bool, previous: dict[str, Any] | None,
                fresh: bool) -> None:
    """Keep the claim's rows until the unit commits (``Unit.before_commit``): a batch of claims
    generated in one transaction writes its facts in three statements, not two per claim. A claim
    written twice in the transaction keeps its last rows (``manual`` once true stays true)."""
    pending: dict[str, _Pending] = unit.memo.setdefault(PENDING, {})
    row, codes = claim_rows(claim, manual)
    earlier = pending.get(claim["id"])
    rewrite = previous is None or claim_rows(previous, False)[1] != codes
    if earlier is not None:
        row["manual"] = row["manual"] or earlier.row["manual"]
        pending[claim["id"]] = _Pending(row, codes, rewrite or earlier.rewrite_codes, earlier.fresh)
    else:
        pending[claim["id"]] = _Pending(row, codes, rewrite, fresh)
    unit.before_commit.setdefault(PENDING, _flush_unit)


SETTLING = "claim-facts-settled"


def _note_settled(unit: Unit, claim_ids: set[str]) -> None:
    """Claims whose remittances changed: their ``settled_cents`` is summed again at the end of
    the transaction, after their own rows are written (a claim and its answer may share one)."""
    unit.memo.setdefault(SETTLING, set()).update(claim_ids)
    unit.before_commit.setdefault(PENDING, _flush_unit)


OTHERS = "other-facts"  # Unit.memo: (type, id) → the latest content of each EOB, eligibility answer, Task


def _note_other(unit: Unit, rtype: str, rid: str, resource: dict[str, Any]) -> None:
    """Keep the row of an EOB, eligibility answer or Task until the unit commits, as claims'
    are: an 835 posted in one transaction writes its remittance rows in one statement."""
    unit.memo.setdefault(OTHERS, {})[(rtype, rid)] = resource
    unit.before_commit.setdefault(PENDING, _flush_unit)


def _flush_unit(unit: Unit) -> None:
    others = unit.memo.pop(OTHERS, {})
    if others:
        _write_others(unit.conn, unit.tenant_id, others)
    pending = unit.memo.pop(PENDING, {})
    if pending:
        _flush(unit.conn, unit.tenant_id, pending)
    settling = unit.memo.pop(SETTLING, set())
    if settling:
        resettle(unit.conn, unit.tenant_id, sorted(settling))


def resettle(conn: sa.Connection, tenant_id: str, claim_ids: list[str] | None) -> None:
    """``claim_fact.settled_cents`` of ``claim_ids`` (None: every claim of the tenant) from
    their active remittances: one statement."""
    summed = (sa.select(sa.func.coalesce(sa.func.sum(REMIT.c.paid_cents + REMIT.c.closing_cents), 0))
              .where(REMIT.c.tenant_id == CLAIM.c.tenant_id, REMIT.c.claim_id == CLAIM.c.claim_id, REMIT.c.active)
              .scalar_subquery())
    where = [CLAIM.c.tenant_id == tenant_id]
    if claim_ids is not None:
        where.append(CLAIM.c.claim_id.in_(claim_ids))
    conn.execute(CLAIM.update().where(*where).values(settled_cents=summed))


def _flush(conn: sa.Connection, tenant_id: str, pending: dict[str, _Pending]) -> None:
    conn.execute(_statement(conn, "claim"), [{"tenant_id": tenant_id, **p.row} for p in pending.values()])
    stale = [claim_id for claim_id, p in pending.items() if p.rewrite_codes and not p.fresh]
    if stale:
        conn.execute(CODE.delete().where(CODE.c.tenant_id == tenant_id, CODE.c.claim_id.in_(stale)))
    codes = [{"tenant_id": tenant_id, **c} for p in pending.values() if p.rewrite_codes for c in p.codes]
    if codes:
        conn.execute(CODE.insert(), codes)


_ROWS = {"ExplanationOfBenefit": remit_row, "CoverageEligibilityResponse": eligibility_row, "Task": writeoff_row}


def _write_others(conn: sa.Connection, tenant_id: str, latest: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Each resource's row written (or, when it makes none now, removed): one statement per type and kind."""
    upserts: dict[str, list[dict[str, Any]]] = {}
    deletes: dict[str, list[dict[str, Any]]] = {}
    for (rtype, rid), resource in latest.items():
        built = _ROWS[rtype](resource)
        if built is None:
            deletes.setdefault(rtype, []).append({"t": tenant_id, "rid": rid})
        else:
            upserts.setdefault(rtype, []).append({"tenant_id": tenant_id, **built})
    for rtype, params in deletes.items():
        conn.execute(_statement(conn, rtype), params)
    for rtype, params in upserts.items():
        conn.execute(_statement(conn, f"upsert:{rtype}"), params)


def noting_client_writes(guard: Guard) -> Guard:
    """The Claim guard, marking a claim a client creates or changes with the server-owned
    extension ``…/claim-manual-change`` (the instant of the first such write): a manual change,
    which the clean claim rate counts, read back from the claim itself by a rebuild."""
    def noted(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> Any:
        out = guard(unit, incoming, current)
        if out is None or manual_change(out):
            return out
        stored = current.resource() if current is not None and not current.deleted else None
        if stored is not None and _content(stored) == _content(out):
            return out  # the client sent the claim back unchanged
        return {**out, "extension": [*(out.get("extension") or []),
                                     {"url": CLAIM_MANUAL_CHANGE, "valueDateTime": instant(unit.now)}]}

    noted.__wrapped__ = guard  # type: ignore[attr-defined]
    return noted


def _content(claim: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claim.items() if k not in ("meta", "id", "text")}


def manual_change(claim: dict[str, Any]) -> bool:
    return any(e.get("url") == CLAIM_MANUAL_CHANGE for e in claim.get("extension") or [])


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: the written resource's fact rows, replaced in the writing transaction."""
    if new.type not in TYPES:
        return []
    resource = new.parsed
    before = previous.parsed if previous is not None and not previous.deleted else None
    if new.type == "Task" and writeoff_row(resource) is None and (before is None or writeoff_row(before) is None):
        return []  # neither version is a written-off denial: no row to write or drop
    if unit is None:
        raise NeedsTransaction()
    if new.type == "Claim" and new.deleted:
        unit.memo.get(PENDING, {}).pop(new.id, None)
        for table in (CLAIM, CODE):
            unit.conn.execute(table.delete().where(table.c.tenant_id == unit.tenant_id, table.c.claim_id == new.id))
    elif new.type == "Claim":
        manual = before is not None and lifecycle(before) == "draft"
        _note_claim(unit, resource, manual, before, fresh=previous is None)
    else:
        _note_other(unit, new.type, new.id, resource)
        if new.type == "ExplanationOfBenefit":
            claims = {_ref_id(r.get("claim"), "Claim") for r in (resource, before or {})} - {None}
            if claims:
                _note_settled(unit, claims)  # type: ignore[arg-type]
    return []


# -- rebuilding ---------------------------------------------------------------------------
def _all(reader: Reader, rtype: str) -> Iterator[dict[str, Any]]:
    from app.fhir.search_sql import R

    rows = reader.conn.execute(sa.select(R.c.content).where(
        R.c.tenant_id == reader.tenant_id, R.c.type == rtype, R.c.deleted.is_(False)))
    for (content,) in rows:
        yield orjson.loads(content)


def held_claims(reader: Reader) -> set[str]:
    """Claims any stored version of which was held by the scrubber (lifecycle draft)."""
    from app.db import ResourceHistoryRow

    H = ResourceHistoryRow.__table__
    out: set[str] = set()
    for rid, content in reader.conn.execute(sa.select(H.c.id, H.c.content).where(
            H.c.tenant_id == reader.tenant_id, H.c.type == "Claim", H.c.content.is_not(None))):
        if rid not in out and lifecycle(orjson.loads(content)) == "draft":
            out.add(rid)
    return out


def rebuild(unit: Unit) -> dict[str, int]:
    """Make every fact row of the unit's tenant again from the stored resources; returns counts.
    Rows are inserted in batches (a database upgraded with 100,000 claims rebuilds in minutes,
    not the hour a statement per claim took)."""
    t = unit.tenant_id
    for table in (CLAIM, CODE, REMIT, ELIGIBILITY, WRITEOFF):
        unit.conn.execute(table.delete().where(table.c.tenant_id == t))
    manual = held_claims(unit)
    counts: dict[str, int] = {}
    batches: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in (CLAIM, CODE, REMIT, ELIGIBILITY, WRITEOFF)}

    def add(table: sa.Table, row: dict[str, Any]) -> None:
        batch = batches[table]
        batch.append({"tenant_id": t, **row})
        if len(batch) >= REBUILD_BATCH:
            unit.conn.execute(table.insert(), batch)
            batch.clear()
    for rtype in sorted(TYPES):
        n = 0
        for resource in _all(unit, rtype):
            n += 1
            if rtype == "Claim":
                row, codes = claim_rows(resource, resource["id"] in manual)
                add(CLAIM, row)
                for code in codes:
                    add(CODE, code)
            elif (built := _ROWS[rtype](resource)) is not None:
                add(_KEYS[rtype][0], built)
        counts[rtype] = n
    for table, batch in batches.items():
        if batch:
            unit.conn.execute(table.insert(), batch)
    resettle(unit.conn, t, None)
    return counts


REBUILD_BATCH = 1000


def snapshot(reader: Reader) -> dict[str, list[tuple[Any, ...]]]:
    """Every fact row of the reader's tenant, sorted (to compare a rebuild with the written rows)."""
    out = {}
    for table in (CLAIM, CODE, REMIT, ELIGIBILITY, WRITEOFF):
        rows = reader.conn.execute(sa.select(table).where(table.c.tenant_id == reader.tenant_id)).all()
        out[table.name] = sorted(tuple(r) for r in rows)
    return out
