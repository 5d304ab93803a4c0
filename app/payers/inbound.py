"""Collecting payer answers: fetch, store raw, acknowledge, then decode and post — each step a job.

``collect-responses`` (one payer connection) fetches the waiting answers and, in its
transaction, stores each one's bytes in ``inbound_message`` (SHA-256 unique per tenant, so a
re-listed answer is stored once) and queues an ``acknowledge-response`` and a
``post-response`` job. The acknowledgment at the payer therefore happens only after the raw
answer is committed: a crash in between leaves it listed at the payer, never lost. Each
``post-response`` decodes and posts one message in its own transaction; an answer that cannot
be decoded is ``quarantined`` with a Task and the others go on. X12 files go through the X12
decoder, clearinghouse JSON reports (content type ``json``: 277CA, 835) through
``payer_adapters.chc_reports`` into the same records, so both forms post identically. A 277
(the answer to a 276 the claim status follow-up sent) is posted by ``status_follow_up.post_277``.

Schedule: ``collect-schedule`` (per tenant) queues a collection for every connection each
``THERABRIDGE_COLLECT_INTERVAL`` seconds (dedupe keys by time slot, so any number of workers and
restarts make one collection per slot) and queues itself for the next slot. A connection whose
collection is still queued or running (a slow payer, a retry waiting out its backoff) gets no new
one in that slot: one connection's collections never overlap, so a slow payer holds one worker at
most. A collector that died leaves its job ``running`` until the lease runs out; then a worker
takes that job over, so the connection is collected again and the next slots queue as before.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime
from typing import Any, Callable

import orjson
import sqlalchemy as sa

from app.fhir.dates import UTC
from app.fhir.store import Store, TenantStore, Unit
from app.jobs import J, enqueue
from app import directory
from app.payers import posting, status_follow_up
from app.payers.models import INBOUND as M
from app.payers.outcomes import biller_task
from app.payers.calls import call_payer
from app.payers.runtime import runtime
from payer_adapters.chc_reports import ReportError, decode_report
from payer_adapters.contract import InboundMessage
from payer_adapters.errors import PayerRejection
from payer_adapters.x12 import DecodeResult, X12Error, decode

log = logging.getLogger("therabridge.payers")

COLLECT = "collect-responses"
ACK = "acknowledge-response"
POST = "post-response"
SCHEDULE = "collect-schedule"
ORDER = {"999": 0, "277CA": 1, "271": 1, "277": 1, "835": 2}  # each answer builds on the one before it


def _insert_ignore(unit: Unit, table: sa.Table, values: dict[str, Any], keys: list[str]) -> int | None:
    dialect = sa.dialects.postgresql if unit.postgres else sa.dialects.sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys).returning(table.c.pk)
    row = unit.conn.execute(stmt).first()
    return row.pk if row else None


def queue_collection(unit: Unit, *, slot: str | None = None) -> int:
    """Queue one collection per payer connection of the tenant. ``slot`` (a scheduled run) dedupes
    by time slot and skips the connections whose collection is still under way; without it (a
    person asked for it now) every connection is collected."""
    n = 0
    tag = slot or f"now-{uuid.uuid4().hex}"
    busy = _collecting(unit) if slot is not None else set()
    for link in directory.list_connections(unit.conn, unit.tenant_id):
        if link.pk in busy:
            log.info("payer connection %s: the previous collection is still under way; slot %s skipped", link.pk, slot)
            continue
        n += enqueue(unit, COLLECT, {"connection": link.pk}, dedupe_key=f"{COLLECT}:{link.pk}@{tag}")
    return n


def _collecting(unit: Unit) -> set[int]:
    """Connections of the tenant with a collection queued or running (its lease live, or run out
    and about to be taken over by a worker); an index range over unfinished jobs only."""
    rows = unit.conn.execute(sa.select(J.c.payload).where(
        J.c.status.in_(("queued", "running")), J.c.tenant_id == unit.tenant_id, J.c.kind == COLLECT)).all()
    return {int(orjson.loads(r.payload)["connection"]) for r in rows}


def _slot(now: datetime, interval: int) -> int:
    return int(now.timestamp()) // max(interval, 1)


def start_schedule(unit: Unit) -> None:
    """Make sure the tenant's collection schedule runs (idempotent within a slot)."""
    interval = runtime().settings.collect_interval
    slot = _slot(unit.now, interval)
    enqueue(unit, SCHEDULE, {"slot": slot}, dedupe_key=f"{SCHEDULE}@{slot}")


def run_schedule(unit: Unit, payload: dict[str, Any]) -> None:
    interval = runtime().settings.collect_interval
    slot = int(payload["slot"])
    if not directory.list_connections(unit.conn, unit.tenant_id):
        return  # no payers: the schedule restarts when one is added
    queue_collection(unit, slot=str(slot))
    nxt = max(slot + 1, _slot(unit.now, interval) + 1)
    dedupe = f"{SCHEDULE}@{nxt}"
    enqueue(unit, SCHEDULE, {"slot": nxt}, dedupe_key=dedupe, run_after=datetime.fromtimestamp(nxt * interval, UTC))


def run_collect(ts: TenantStore, payload: dict[str, Any]) -> None:
    """Fetch the connection's answers (no transaction held), then store them raw in one."""
    with ts.reading() as reader:
        link = directory.by_pk(reader.conn, int(payload["connection"]))
    if link is None or link.tenant_id != ts.tenant_id:
        return
    try:
        messages = call_payer(ts, link, "reports", lambda adapter: adapter.fetch_responses())
    except PayerRejection:
        log.warning("payer refused the collection for connection %s", link.pk)
        return
    messages.sort(key=lambda m: (ORDER.get(m.kind or "", 3), m.name))
    with ts.unit() as unit:
        for msg in messages:
            _store(unit, link, msg)


def _store(unit: Unit, link: directory.PayerLink, msg: InboundMessage) -> None:
    """Keep one answer as received, queue its posting, and its acknowledgment at the payer."""
    digest = hashlib.sha256(msg.data).hexdigest()
    pk = _insert_ignore(unit, M, dict(
        tenant_id=unit.tenant_id, connection_pk=link.pk, payer=link.organization_id, name=msg.name[:300],
        kind=msg.kind, content_type=msg.content_type, sha256=digest, data=msg.data,
        received_at=msg.received_at, status="stored"), ["tenant_id", "sha256"])
    if pk is not None:
        enqueue(unit, POST, {"message": pk}, dedupe_key=f"{POST}:{pk}")
    enqueue(unit, ACK, {"connection": link.pk, "name": msg.name, "content_type": msg.content_type,
                        "kind": msg.kind}, dedupe_key=f"{ACK}:{link.pk}:{digest}:{msg.name[:80]}")


def run_acknowledge(ts: TenantStore, payload: dict[str, Any]) -> None:
    with ts.reading() as reader:
        link = directory.by_pk(reader.conn, int(payload["connection"]))
    if link is None or link.tenant_id != ts.tenant_id:
        return
    msg = InboundMessage(name=payload["name"], data=b"", content_type=payload["content_type"],
                         received_at=ts.store.clock(), kind=payload.get("kind"))
    try:
        call_payer(ts, link, "reports", lambda adapter: adapter.acknowledge(msg))
    except PayerRejection:
        log.warning("payer refused an acknowledgment for connection %s", link.pk)


#: Stored content type → decoder into the records ``posting`` posts (``kind`` as the adapter named it).
DECODERS: dict[str, Callable[[bytes, str | None], DecodeResult]] = {
    "x12": lambda data, kind: decode(data),
    "json": lambda data, kind: decode_report(data, kind=kind),
}


def _set_status(unit: Unit, pk: int, status: str, error: str | None = None) -> None:
    unit.conn.execute(M.update().where(M.c.pk == pk).values(status=status, error=error, posted_at=unit.now))


def run_post(unit: Unit, payload: dict[str, Any]) -> None:
    row = unit.conn.execute(sa.select(M).where(M.c.pk == int(payload["message"]),
                                               M.c.tenant_id == unit.tenant_id)).first()
    if row is None or row.status != "stored":
        return
    decoder = DECODERS.get(row.content_type)
    if decoder is None:
        _quarantine(unit, row, f"content type {row.content_type} is not posted yet")
        return
    try:
        result = decoder(bytes(row.data), row.kind)
    except (X12Error, ReportError) as err:
        _quarantine(unit, row, f"{type(err).__name__}: {err}")
        return
    status = "posted"
    posting.post_999(unit, result, row.connection_pk)
    posting.post_277ca(unit, result)
    if result.remittances and not posting.post_835(unit, result):
        status = "duplicate"
    posting.post_271(unit, result)
    status_follow_up.post_277(unit, result)
    _set_status(unit, row.pk, status)


def _quarantine(unit: Unit, row: Any, error: str) -> None:
    _set_status(unit, row.pk, "quarantined", error[:2000])
    biller_task(unit, {}, "inbound-quarantined", "Payer answer could not be read",
                f"The payer answer {row.name} from Organization/{row.payer} could not be decoded and was set "
                f"aside (inbound message {row.pk}).", [error], unit.now, key=f"inbound:{row.pk}")


def messages(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's inbound messages without their bytes (for the CLI and tests)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(M.c.pk, M.c.payer, M.c.name, M.c.kind, M.c.content_type, M.c.status, M.c.error,
                                      M.c.sha256)
                            .where(M.c.tenant_id == tenant).order_by(M.c.pk)).all()
    return [dict(r._mapping) for r in rows]
