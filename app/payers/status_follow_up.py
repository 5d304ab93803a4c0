"""Claim status follow-up: claims sent and never answered are asked about, and the answer acts.

A claim can go quiet after it leaves: the payer lost the file, the clearinghouse dropped the
call, the 835 went to someone else. Nobody notices until the filing limit has passed, so:

- ``claim-status-sweep`` (per tenant, once a UTC day, re-queued through ``jobs.schedule_daily``
  and started when a payer connection is added) reads every active claim sent and not yet
  adjudicated (lifecycle ``submitted``/``acknowledged``/``accepted``: no 277CA answer or no
  835) with one query, and the last submission and last inquiry of each with one more each. A
  claim whose last word (its submission, or the payer's last answer) is at least N days old —
  N the connection's ``status_follow_up_days``, else ``default_days`` in
  ``data/status_follow_up.json`` — gets one ``claim-status`` job. The inquiry row (unique per
  claim and day) and the job key (claim + day) make it idempotent; a claim whose inquiry is
  still queued, or sent (a 276 waiting for its 277) less than N days ago, is not asked again.
- ``claim-status`` asks the payer through its adapter (``PayerAdapter.claim_status``): a 276 in
  the mailbox (the 277 comes back through the collection and ``post_277``), the clearinghouse's
  claim status API, or the FHIR payer's ``Claim/$inquire``.
- ``record_answer`` stores the answer as a ClaimResponse (``claim-status-lifecycle`` says where
  the claim stands), moves the Claim's lifecycle forward only (``lifecycle.move``), and opens a
  ``claim-status`` work item where a person must act (``answers`` in the data file): not on file
  → resubmit (``$submit`` sends the same claim again, see ``may_resubmit``), rejected → correct,
  information requested → send it. Pending → nothing; asked again in N days. Paid or denied →
  the 835 is awaited; if none has come N days after that answer, a Task says so. A FHIR
  payer's final ClaimResponse is the decision itself (there is no 835): it is posted as the
  answer to ``$submit`` is.
- The work item closes itself when the claim is adjudicated (its 835, or a payer's final
  ClaimResponse: ``on_write`` queues ``claim-status-close``) or a later answer needs nobody.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa

from app import directory
from app.claims.by_lifecycle import claims_with_lifecycle
from app.claims.lifecycle import lifecycle, move, paid_state_of, rank
from app.fhir.dates import UTC, instant
from app.fhir.store import NeedsTransaction, TenantStore, Unit, Version
from app.fhir.tasks import is_open, task_input, work_item
from app.jobs import enqueue, schedule_daily
from app.outbox import QueuedJob, insert_jobs
from app.payers import posting
from app.payers.calls import call_payer
from app.payers.models import STATUS_INQUIRIES as Q, SUBMISSIONS as S
from app.payers.outcomes import issues_text, put
from app.payers.packages import claim_package
from fhir_mappings.identifiers import patient_control_number
from fhir_mappings.vocabulary import (
    CLAIM_STATUS_LIFECYCLE, CLAIM_STATUS_LIFECYCLE_CODES, SERVER_NAMESPACE, X12_STC_STATUS, stable_id,
)
from payer_adapters.contract import StatusResult
from payer_adapters.errors import PayerRejection
from payer_adapters.x12 import DecodeResult, StatusResponse277, status277_to_fhir

log = logging.getLogger("therabridge.payers")

SWEEP = "claim-status-sweep"
KIND = "claim-status"
CLOSE = "claim-status-close"
TASK_CODE = "claim-status"
CHUNK = 500
DATA = Path(__file__).parent / "data" / "status_follow_up.json"


@cache
def settings() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def follow_up_days(link: directory.PayerLink | None) -> int:
    """The connection's ``status_follow_up_days``, else the default (a contract term, like its
    timely-filing days)."""
    return (link.status_follow_up_days if link is not None else None) or int(settings()["default_days"])


def _rule(answer: str | None) -> dict[str, Any]:
    return settings()["answers"].get(answer or "", settings()["answers"]["submitted"])


# -- the schedule and the sweep ---------------------------------------------------------------
def start_schedule(unit: Unit) -> None:
    """``directory.ON_ADD``: make sure the tenant's daily sweep runs (today's at once)."""
    day = unit.now.date().isoformat()
    enqueue(unit, SWEEP, {"day": day}, dedupe_key=f"{SWEEP}@{day}")


def ensure_schedules(store: Any) -> int:
    """At start-up: today's sweep for every tenant with a payer connection (connections added
    before this feature, or a chain of daily sweeps that was cut); how many tenants."""
    tenants = sorted({link.tenant_id for link in directory.list_connections(store.engine)})
    for tenant in tenants:
        with store.for_tenant(tenant, actor="scheduler").unit() as unit:
            start_schedule(unit)
    return len(tenants)


@dataclass
class _Last:
    """What the sweep knows of a claim besides the Claim: its last submission and inquiry."""

    sent: datetime | None = None
    inquiry: Any = None  # the latest claim_status_inquiry row


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _history(unit: Unit, ids: list[str]) -> dict[str, _Last]:
    """Per claim: when it last went to the payer and its latest inquiry (two queries per chunk)."""
    out = {i: _Last() for i in ids}
    for chunk in _chunks(ids):
        for r in unit.conn.execute(sa.select(S.c.claim_id, sa.func.max(sa.func.coalesce(S.c.submitted_at,
                                                                                           S.c.created_at)))
                                   .where(S.c.tenant_id == unit.tenant_id, S.c.claim_id.in_(chunk),
                                          S.c.status == "submitted").group_by(S.c.claim_id)).all():
            out[r[0]].sent = r[1]
        for r in unit.conn.execute(sa.select(Q).where(Q.c.tenant_id == unit.tenant_id, Q.c.claim_id.in_(chunk))
                                   .order_by(Q.c.asked_at, Q.c.pk)).all():
            out[r.claim_id].inquiry = r  # the last one wins
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _due(day: date, since: date | None, days: int) -> bool:
    return since is not None and day >= since + timedelta(days=days)


def decide(day: date, last: _Last, days: int) -> str | None:
    """``ask``, ``no-remittance`` or None (nothing to do on ``day``) for one claim. An inquiry
    counts from the sweep day that asked (its answer from no earlier than that day)."""
    q = last.inquiry
    if q is None or (last.sent is not None and _aware(last.sent) > _aware(q.asked_at)):
        sent = _aware(last.sent).date() if last.sent is not None else None
        return "ask" if _due(day, sent, days) else None  # never asked since it was (re)sent
    asked = date.fromisoformat(q.day)
    if q.status in ("queued", "sent", "failed", "skipped"):
        return "ask" if _due(day, asked, days) else None  # in flight: no answer for N days → again
    answered = max(asked, _aware(q.answered_at).date()) if q.answered_at is not None else asked
    nxt = _rule(q.answer)["next"]
    if nxt == "ask-again":
        return "ask" if _due(day, answered, days) else None
    if nxt == "await-835":
        return "no-remittance" if _due(day, answered, days) and q.task_id is None else None
    return None  # a person acts on the work item; a resubmission starts the clock again


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """Ask about every claim due on ``payload["day"]``; then queue tomorrow's sweep."""
    day = date.fromisoformat(payload["day"])
    claims = [c for c in claims_with_lifecycle(unit, settings()["watched"]) if c.get("status") == "active"]
    history = _history(unit, [c["id"] for c in claims])
    rows, jobs = [], []
    for claim in claims:
        link = directory.for_insurer_in(unit, claim.get("insurer"))
        if link is None:
            continue
        what = decide(day, history[claim["id"]], follow_up_days(link))
        if what == "no-remittance":
            _no_remittance(unit, claim, history[claim["id"]].inquiry)
        elif what == "ask":
            rows.append(dict(tenant_id=unit.tenant_id, claim_id=claim["id"], day=day.isoformat(),
                             connection_pk=link.pk, trace=patient_control_number(claim), status="queued",
                             asked_at=unit.now))
            jobs.append(QueuedJob(KIND, {"claim": claim["id"], "day": day.isoformat()},
                                  dedupe_key=f"{KIND}:{claim['id']}@{day.isoformat()}"))
    if rows:
        dialect = sa.dialects.postgresql if unit.postgres else sa.dialects.sqlite
        unit.conn.execute(dialect.insert(Q).on_conflict_do_nothing(
            index_elements=["tenant_id", "claim_id", "day"]), rows)
        insert_jobs(unit.conn, unit.tenant_id, unit.now, jobs)
    schedule_daily(unit, SWEEP, day + timedelta(days=1))


# -- asking -------------------------------------------------------------------------------
def _row(reader: Any, claim_id: str, day: str) -> Any:
    return reader.conn.execute(sa.select(Q).where(Q.c.tenant_id == reader.tenant_id, Q.c.claim_id == claim_id,
                                                  Q.c.day == day)).first()


def _set(unit: Unit, pk: int, **values: Any) -> None:
    unit.conn.execute(Q.update().where(Q.c.pk == pk).values(**values))
    unit.memo.pop(OPEN_FOLLOW_UPS, None)


def run_inquiry(ts: TenantStore, payload: dict[str, Any]) -> None:
    """``claim-status``: ask the payer about one claim (no transaction held during the call)."""
    claim_id, day = payload["claim"], payload["day"]
    with ts.reading() as reader:
        row = _row(reader, claim_id, day)
        if row is None or row.status != "queued":
            return  # asked already (a job run twice)
        current = reader.current("Claim", claim_id)
        claim = current.resource() if current is not None and not current.deleted else None
        link = directory.for_insurer(reader.conn, ts.tenant_id, claim.get("insurer")) if claim else None
        pkg = claim_package(reader, claim) if claim is not None and link is not None else None
    if claim is None or pkg is None or lifecycle(claim) not in settings()["watched"] \
            or claim.get("status") != "active":
        with ts.unit() as unit:
            _set(unit, row.pk, status="skipped", answered_at=unit.now)
        return
    ask = _asker()
    try:
        result = call_payer(ts, link, "status", lambda adapter: ask(adapter)(pkg, key=f"{claim_id}-{day}"))
    except NoClaimStatus:
        with ts.unit() as unit:
            _set(unit, row.pk, status="skipped", answered_at=unit.now)
        return
    except PayerRejection as rejection:
        log.warning("claim status request refused for connection %s", link.pk)
        with ts.unit() as unit:
            _set(unit, row.pk, status="failed", answered_at=unit.now)
            _open_task(unit, claim, row, "status-unavailable", "Claim status request refused",
                       "The claim status request could not be sent or was refused: correct what the reasons say; "
                       "the payer is asked again in a few days.", issues_text(rejection.outcome), code=None)
        return
    with ts.unit() as unit:
        if result.queued:
            _set(unit, row.pk, status="sent", reference=(result.reference or "")[:200])
            return
        record_answer(unit, claim, result.response, row=row, source=f"{KIND}:{day}")


class NoClaimStatus(PayerRejection):
    """The connection's adapter offers no claim status (a kind registered without one)."""


def _asker() -> Any:
    """The adapter's ``claim_status``; an adapter kind registered without one raises
    :class:`NoClaimStatus` (the inquiry is skipped, nobody is bothered)."""
    def ask(adapter: Any) -> Any:
        method = getattr(adapter, "claim_status", None)
        if method is not None:
            return method

        async def unavailable(pkg: Any, *, key: str) -> StatusResult:
            raise NoClaimStatus("this payer connection offers no claim status",
                                {"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                                                                                "code": "not-supported"}]})
        return unavailable
    return ask


# -- answers ------------------------------------------------------------------------------
def _lifecycle_ext(code: str) -> dict[str, Any]:
    return {"url": CLAIM_STATUS_LIFECYCLE, "valueCoding": {"system": CLAIM_STATUS_LIFECYCLE_CODES, "code": code}}


def status_of(response: dict[str, Any]) -> str:
    """Where the claim stands per a payer's answer: the 277 mapping's ``claim-status-lifecycle``
    when the payer sent a status code, else read from a FHIR payer's ClaimResponse outcome."""
    for ext in response.get("extension") or []:
        if ext.get("url") == CLAIM_STATUS_LIFECYCLE:
            return str((ext.get("valueCoding") or {}).get("code") or "pending")
    outcome = response.get("outcome")
    if outcome == "queued":
        return "pending"
    if outcome == "error":
        return "rejected"
    state = paid_state_of(response)
    return "denied" if state == "denied" else "paid"


def is_adjudication(response: dict[str, Any]) -> bool:
    """A FHIR payer's ClaimResponse that decides the claim (``complete``/``partial`` and no 277
    status): posted like the answer to ``$submit`` (there is no 835 to wait for)."""
    return response.get("outcome") in ("complete", "partial") and not any(
        e.get("url") == CLAIM_STATUS_LIFECYCLE for e in response.get("extension") or [])


def status_code(response: dict[str, Any]) -> str | None:
    """The answer's first status as ``category:status[:entity]`` (X12 STC01), when it has one."""
    for ext in response.get("extension") or []:
        if ext.get("url") != X12_STC_STATUS:
            continue
        for part in ext.get("extension") or []:
            if part.get("url") == "status":
                codes = [c.get("code", "") for c in (part.get("valueCodeableConcept") or {}).get("coding") or []]
                return ":".join(c for c in codes if c)[:40] or None
    return None


def not_on_file(claim: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The ClaimResponse for a payer that answered with no claim at all (a PAS ``$inquire`` with
    no ClaimResponse, a claim status answer with no claim): it has none on file."""
    return {"resourceType": "ClaimResponse", "status": "active", "type": claim.get("type"),
            "use": claim.get("use", "claim"), "patient": claim.get("patient"), "created": instant(now),
            "insurer": claim.get("insurer"), "outcome": "error",
            "disposition": "The payer has no claim on file under this patient control number",
            "extension": [_lifecycle_ext("not-found")],
            "error": [{"code": {"text": "no claim on file"}}]}


def record_answer(unit: Unit, claim: dict[str, Any], response: dict[str, Any] | None, *, row: Any,
                  source: str) -> str:
    """Store a status answer for ``claim`` and act on it (see the module docstring); returns
    where the claim stands. ``row`` is the inquiry answered (None for an unasked 277)."""
    response = dict(response) if response is not None else not_on_file(claim, unit.now)
    stored = unit.current("Claim", claim["id"])
    claim = stored.resource() if stored is not None and not stored.deleted else claim
    open_ = lifecycle(claim) in settings()["watched"] and claim.get("status") == "active"  # still followed up
    code = status_code(response)
    state = settings()["categories"].get((code or "").split(":")[0]) or status_of(response)
    if is_adjudication(response):  # a PAS payer's final ClaimResponse: the decision itself, not a report of one
        posting.post_claim_response(unit, claim, response, source=source)
        if open_:
            move(unit, claim["id"], *posting.answer_states(response, claim))
        if row is not None:
            _set(unit, row.pk, status="answered", answer=state, code=code, answered_at=unit.now)
        close_tasks(unit, claim["id"], f"the payer decided: {state}")
        return state
    response["id"] = stable_id(SERVER_NAMESPACE, "claim-status", claim["id"], source, state, response.get("id") or "")
    response["request"] = {**(response.get("request") or {}), "reference": f"Claim/{claim['id']}"}
    put(unit, response)
    rule = _rule(state)
    if rule["moves"] and open_:  # sent, not yet adjudicated: forward only
        move(unit, claim["id"], *rule["moves"])
    if row is not None:
        _set(unit, row.pk, status="answered", answer=state, code=code, answered_at=unit.now)
    if rule.get("task") and open_:
        t = rule["task"]
        reasons = [r for r in [response.get("disposition")] if r]
        _open_task(unit, claim, row, state, t["display"], t["action"].replace("{claim}", claim["id"]), reasons,
                   code=code, priority=t.get("priority", "routine"), response=response["id"])
    elif open_:
        close_tasks(unit, claim["id"], f"the payer now reports the claim {state}")
    return state


def _open_task(unit: Unit, claim: dict[str, Any], row: Any, state: str, display: str, action: str,
               reasons: list[str], *, code: str | None, priority: str = "urgent", response: str | None = None) -> None:
    day = row.day if row is not None else unit.now.date().isoformat()
    task_id = stable_id(SERVER_NAMESPACE, "task", TASK_CODE, claim["id"], day, state)
    unit.lock("task", task_id)
    if unit.current("Task", task_id) is None:
        inputs = [task_input("status", valueString=state), task_input("nextAction", valueString=action)]
        if code:
            inputs.insert(1, task_input("statusCode", valueString=code))
        inputs += [task_input("statusText", valueString=r[:1000]) for r in reasons[:5]]
        if response:
            inputs.append(task_input("answer", valueReference={"reference": f"ClaimResponse/{response}"}))
        task = work_item(TASK_CODE, display, f"Claim/{claim['id']}: {action}", unit.now, task_id=task_id,
                         focus=f"Claim/{claim['id']}", patient=claim.get("patient"), priority=priority,
                         business_status=state, inputs=inputs)
        unit.update("Task", task_id, task, fresh_id=True)
    if row is not None:
        _set(unit, row.pk, task_id=task_id, task_closed_at=None)


def _no_remittance(unit: Unit, claim: dict[str, Any], row: Any) -> None:
    t = settings()["no_remittance"]
    answered = _aware(row.answered_at).date().isoformat()
    _open_task(unit, claim, row, "no-remittance", t["display"],
               t["action"].replace("{answer}", row.answer or "decided").replace("{answered}", answered),
               [f"status {row.code or row.answer} on {answered}"], code=row.code, priority=t["priority"])


def close_tasks(unit: Unit, claim_id: str, why: str) -> int:
    """Complete the claim's open ``claim-status`` work items (one indexed query when it has none)."""
    rows = unit.conn.execute(sa.select(Q.c.pk, Q.c.task_id).where(
        Q.c.tenant_id == unit.tenant_id, Q.c.claim_id == claim_id, Q.c.task_id.is_not(None),
        Q.c.task_closed_at.is_(None))).all()
    n = 0
    for r in rows:
        def complete(task: dict[str, Any]) -> bool:
            if not is_open(task):
                return False
            task.update(status="completed", businessStatus={"text": why}, lastModified=instant(unit.now))
            return True

        current = unit.current("Task", r.task_id)
        if current is not None and not current.deleted and unit.modify("Task", r.task_id, complete) is not None:
            n += 1
        _set(unit, r.pk, task_closed_at=unit.now)
    return n


def run_close(unit: Unit, payload: dict[str, Any]) -> None:
    """``claim-status-close``: the claim was adjudicated; its follow-up work items are done."""
    current = unit.current("Claim", payload["claim"])
    state = lifecycle(current.resource()) if current is not None and not current.deleted else None
    close_tasks(unit, payload["claim"], f"the claim is {state or 'gone'}: nothing left to follow up")


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: a Claim that reaches adjudication (paid, partially paid, denied) with an open
    follow-up work item gets it closed (``claim-status-close``)."""
    if new.type != "Claim" or not new.content or previous is None or not previous.content:
        return []
    now_rank = rank(lifecycle(new.parsed))
    if now_rank < rank("paid") or rank(lifecycle(previous.parsed)) >= rank("paid"):
        return []
    if unit is None:
        raise NeedsTransaction  # whether a work item is open is in the inquiry table
    if not _follow_up_open(unit, new.id):
        return []
    return [QueuedJob(CLOSE, {"claim": new.id}, dedupe_key=f"{CLOSE}:{new.id}@{new.version_id}")]


OPEN_FOLLOW_UPS = "status-follow-up-open"  # Unit.memo: the claims with an open follow-up work item
OPEN_FOLLOW_UPS_KEPT = 2000  # beyond this many, each claim is asked about on its own


def _follow_up_open(unit: Unit, claim_id: str) -> bool:
    """Whether ``claim_id`` has an open follow-up work item. An 835 pays hundreds of claims in one
    transaction and few if any have one: the open ones are read once per transaction (up to
    ``OPEN_FOLLOW_UPS_KEPT``; ``_set`` forgets them) instead of one query per claim."""
    where = [Q.c.tenant_id == unit.tenant_id, Q.c.task_id.is_not(None), Q.c.task_closed_at.is_(None)]
    known = unit.memo.get(OPEN_FOLLOW_UPS)
    if known is None:
        rows = unit.conn.execute(sa.select(Q.c.claim_id).where(*where).limit(OPEN_FOLLOW_UPS_KEPT + 1)).all()
        known = unit.memo[OPEN_FOLLOW_UPS] = {r.claim_id for r in rows} if len(rows) <= OPEN_FOLLOW_UPS_KEPT else False
    if known is not False:
        return claim_id in known
    return unit.conn.execute(sa.select(Q.c.pk).where(*where, Q.c.claim_id == claim_id).limit(1)).first() is not None


# -- the 277 from the mailbox ---------------------------------------------------------------
def post_277(unit: Unit, result: DecodeResult) -> int:
    """277 claim status responses (answers to our 276s): each claim's answer recorded as above,
    against the claim's last inquiry sent; an answer for no claim of ours is kept as it came."""
    n = 0
    for res in result.of_type(StatusResponse277):
        claims = {c.claim_key: posting.claim_by_pcn(unit, c.claim_key) for c in res.claims}
        known = {k: v for k, v in claims.items() if v}
        for entry, c in zip(status277_to_fhir(res, known), res.claims):
            claim = known.get(c.claim_key)
            if claim is None:
                put(unit, entry["resource"])
                continue
            row = unit.conn.execute(sa.select(Q).where(
                Q.c.tenant_id == unit.tenant_id, Q.c.claim_id == claim["id"], Q.c.status == "sent")
                .order_by(Q.c.asked_at.desc(), Q.c.pk.desc()).limit(1)).first()
            record_answer(unit, claim, entry["resource"], row=row, source=f"277:{c.trace}")
            n += 1
    return n


# -- resubmission -------------------------------------------------------------------------
def may_resubmit(unit: Unit, claim: dict[str, Any]) -> bool:
    """Whether ``$submit`` may send this already-sent claim again: the payer's last answer was that
    it has no such claim on file, and the claim has not been sent since. The resend is the same
    Claim (same id, patient control number, frequency 1) under a new submission key, so the
    payer still holds at most one claim for the service."""
    if claim.get("status") != "active" or lifecycle(claim) not in settings()["watched"]:
        return False
    last = unit.conn.execute(sa.select(Q).where(Q.c.tenant_id == unit.tenant_id, Q.c.claim_id == claim["id"],
                                                Q.c.status == "answered")
                             .order_by(Q.c.answered_at.desc(), Q.c.pk.desc()).limit(1)).first()
    if last is None or not _rule(last.answer).get("resubmit"):
        return False
    sent = unit.conn.execute(sa.select(sa.func.max(S.c.created_at)).where(
        S.c.tenant_id == unit.tenant_id, S.c.claim_id == claim["id"])).scalar()
    return sent is None or _aware(sent) <= _aware(last.answered_at)


def resubmitted(unit: Unit, claim_id: str) -> None:
    """Note on the open work items that the claim went again (they close when it is adjudicated)."""
    rows = unit.conn.execute(sa.select(Q.c.task_id).where(
        Q.c.tenant_id == unit.tenant_id, Q.c.claim_id == claim_id, Q.c.task_id.is_not(None),
        Q.c.task_closed_at.is_(None))).all()
    for r in rows:
        def note(task: dict[str, Any]) -> bool:
            if not is_open(task):
                return False
            task.update(status="in-progress", businessStatus={"text": "resubmitted"}, lastModified=instant(unit.now))
            return True

        if unit.current("Task", r.task_id) is not None:
            unit.modify("Task", r.task_id, note)


def inquiries(unit_or_reader: Any, claim_id: str) -> list[dict[str, Any]]:
    """The claim's inquiries, oldest first (for tests and the CLI)."""
    rows = unit_or_reader.conn.execute(sa.select(Q).where(Q.c.tenant_id == unit_or_reader.tenant_id,
                                                          Q.c.claim_id == claim_id).order_by(Q.c.asked_at, Q.c.pk))
    return [dict(r._mapping) for r in rows]

