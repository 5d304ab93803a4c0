"""AuditEvents for FHIR interactions (who, what, action, outcome, from where).

Writes are audited inside the transaction that makes them (the store calls
:meth:`AuditLog.write` before committing), so a change and its audit trail commit together.
Reads and searches are audited through a bounded in-process queue flushed in batches by one
thread, so a read costs an enqueue rather than a database write; a full queue blocks the
caller instead of dropping events. Authentication events go to the same table from
``app.auth.audit``. Nothing here logs content: the audit table is the protected record.
"""
from __future__ import annotations

import base64
import logging
import queue
import threading
from datetime import datetime
from typing import Any, Callable, Iterable

import orjson
from sqlalchemy.engine import Connection, Engine

from app.auth.models import T
from app.db import write_connection
from app.fhir.access import compartment_patient
from app.fhir.registry import Registry
from app.ids import unique_hex
from app.fhir.dates import UTC, instant
from app.security import AccessContext

log = logging.getLogger("therabridge.audit")
AUDIT = T["audit"]
_COLUMNS = ("tenant_id", "recorded", "content", "action", "outcome", "entity", "patient", "agent")
_COPY = f"COPY audit_event ({', '.join(_COLUMNS)}) FROM STDIN"

EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
SUBTYPE_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ACTION = {"create": "C", "read": "R", "vread": "R", "update": "U", "patch": "U", "delete": "D",
          "search-type": "E", "search-system": "E", "history-instance": "R", "history-type": "R",
          "history-system": "R", "transaction": "E", "batch": "E", "operation": "E"}
OUTCOME_OK, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"
SERVICE_SYSTEM = "urn:therabridge:service"


def interaction_row(ctx: AccessContext | None, tenant_id: str | None, subtype: str, *, outcome: str,
                    entity: str | None = None, query: str | None = None, patient: str | None = None,
                    source: str | None = None, detail: str | None = None,
                    now: datetime | None = None, actor: str | None = None) -> dict[str, Any]:
    """One audit row (document + search columns) for a FHIR interaction. ``actor`` names the
    server's own component (a background job, the command line) when no client asked."""
    when = now or datetime.now(UTC)
    source = source or (ctx.source_address if ctx else None)
    agents: list[dict[str, Any]] = []
    network = {"address": source, "type": "2"} if source else None
    if actor:
        agents.append(_agent("service", SERVICE_SYSTEM, actor, True, None))
    if ctx and ctx.client_id:
        agents.append(_agent("client", "urn:therabridge:client", ctx.client_id, ctx.user is None, network))
    if ctx and ctx.user:
        agents.append(_agent("user", "urn:therabridge:user", ctx.user, True, network))
    if not agents:
        agents.append({"type": {"text": "anonymous"}, "who": {"display": "unauthenticated caller"},
                       "requestor": True, **({"network": network} if network else {})})
    doc: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": unique_hex(),
        "type": EVENT_TYPE,
        "subtype": [{"system": SUBTYPE_SYSTEM, "code": subtype}],
        "action": ACTION.get(subtype, "E"),
        "recorded": instant(when),
        "outcome": outcome,
        "agent": agents,
        "source": {"observer": {"display": "therabridge-fhir"}},
    }
    if detail:
        doc["outcomeDesc"] = detail[:500]
    entities: list[dict[str, Any]] = []
    if entity:
        entities.append({"what": {"reference": entity}})
    if query:
        entities.append({"query": base64.b64encode(query.encode()).decode()})
    if patient:
        entities.append({"what": {"reference": f"Patient/{patient}"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    if entities:
        doc["entity"] = entities
    return {"tenant_id": tenant_id, "recorded": when, "content": orjson.dumps(doc).decode(),
            "action": doc["action"], "outcome": outcome, "entity": entity, "patient": patient,
            "agent": actor or ((ctx.user or ctx.client_id) if ctx else None)}


def _agent(kind: str, system: str, value: str, requestor: bool, network: dict | None) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": {"text": kind}, "who": {"identifier": {"system": system, "value": value}},
                             "requestor": requestor}
    if network:
        agent["network"] = network
    return agent


class AuditLog:
    def __init__(self, engine: Engine, *, max_queue: int = 20000, batch: int = 100, interval: float = 0.1) -> None:
        self.engine = engine
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self.batch = batch
        self.interval = interval
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def enqueue(self, row: dict[str, Any]) -> None:
        """Audit a read or a failure without waiting for the database."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="therabridge-audit", daemon=True)
                    self._thread.start()
        self.queue.put(row)

    def flush(self) -> int:
        """Write everything queued so far, including a batch the writer thread holds (shutdown, tests)."""
        rows: list[dict[str, Any]] = []
        while True:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        self._insert(rows)
        for _ in rows:
            self.queue.task_done()
        self.queue.join()
        return len(rows)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer after one last attempt to write what is queued (process shutdown)."""
        self._closed.set()
        done = threading.Event()
        threading.Thread(target=lambda: (self._try_flush(), done.set()), daemon=True).start()
        if not done.wait(timeout):
            log.error("audit writer stopped with %d events unwritten (database unavailable)", self.queue.qsize())

    def _try_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            log.error("final audit flush failed: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._closed.is_set():
            rows = [self.queue.get()]
            try:
                while len(rows) < self.batch:
                    rows.append(self.queue.get(timeout=self.interval))
            except queue.Empty:
                pass
            self._write_held(rows)

    def _write_held(self, rows: list[dict[str, Any]]) -> None:
        """Keep the batch until the database takes it (the bounded queue applies backpressure).
        A batch taken just before shutdown still gets its attempt: ``close`` waits for it."""
        while True:
            try:
                self._insert(rows)
                break
            except Exception as exc:
                if self._closed.is_set():
                    log.error("audit writer stopped: %d audit events could not be written (%s)",
                              len(rows), type(exc).__name__)
                    break
                log.warning("could not write %d audit events (%s); retrying", len(rows), type(exc).__name__)
                self._closed.wait(1.0)
        for _ in rows:
            self.queue.task_done()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.engine.dialect.name == "postgresql":
            # COPY costs a third of the client CPU of a multi-row INSERT; this thread shares the
            # GIL with the event loop serving the reads it records.
            raw = self.engine.raw_connection()
            try:
                with raw.cursor() as cur, cur.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row([row.get(c) for c in _COLUMNS])
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                raw.close()
            return
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(AUDIT.insert(), rows)


def system_audit(tenant_id: str, actor: str, registry: Registry,
                 base: str) -> Callable[[list[tuple[str, Any]]], list[dict[str, Any]]]:
    """The audit hook for writes no client asked for (background jobs, the command line, the
    demo loader): every claim, response and task the server writes on its own is recorded,
    in the writing transaction, with the component that wrote it as the agent."""
    def rows(written: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [interaction_row(None, tenant_id, action, outcome=OUTCOME_OK, entity=f"{v.type}/{v.id}",
                                patient=compartment_patient(v.parsed, registry, base) if v.content else None,
                                now=now, actor=actor)
                for action, v in written]

    return rows


def write_rows(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    # One row (every single create, update or delete) as a plain execute: a one-element
    # executemany goes through the driver's batching and cost 6 % of PostgreSQL create throughput.
    rows = list(rows)
    if len(rows) == 1:
        conn.execute(AUDIT.insert(), rows[0])
    elif rows:
        conn.execute(AUDIT.insert(), rows)
