"""The job table (the durable outbox) and how jobs get into it.

A job is written in the same transaction as the change that causes it, so a committed change
always has its follow-up work queued and a rolled-back one never does. ``app.jobs`` runs them.
The store writes the jobs its write observers ask for (``QueuedJob``); everything else queues
with ``app.jobs.enqueue``. Both end in ``insert_jobs``, or, for PostgreSQL's one-statement
resource writes, in that statement (``app.fhir.store.pg_writes``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from app.db import BigId


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_job_dedupe"),
        sa.Index("ix_job_due", "status", "run_after"),
        sa.Index("ix_job_kind_due", "status", "kind", "run_after"),  # expedited kinds (app.jobs)
    )
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(max_length=64)
    kind: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=255)
    payload: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(max_length=16)  # queued | running | done | dead
    attempts: int = 0
    run_after: datetime
    locked_by: str | None = Field(default=None, max_length=128)
    locked_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime
    updated_at: datetime


J = Job.__table__


@dataclass(frozen=True)
class QueuedJob:
    """A job to queue: ``kind`` names its handler; a second job with the same ``dedupe_key``
    (per tenant) is not queued."""

    kind: str
    payload: dict[str, Any]
    dedupe_key: str
    run_after: datetime | None = None  # due now when None

    def payload_text(self) -> str:
        return orjson.dumps(self.payload).decode()


# Built once: jobs are queued inside hot write paths (every finished Encounter).
_INSERT = {
    name: dialect.insert(J).on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"]).returning(J.c.pk)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def insert_jobs(conn: Connection, tenant_id: str, now: datetime, jobs: Iterable[QueuedJob]) -> int:
    """Queue ``jobs`` (due at ``now`` unless a job says when) in ``conn``'s transaction; how many were new."""
    statement = _INSERT[conn.dialect.name]
    queued = 0
    for job in jobs:
        row = conn.execute(statement, {
            "tenant_id": tenant_id, "kind": job.kind, "dedupe_key": job.dedupe_key, "payload": job.payload_text(),
            "status": "queued", "attempts": 0, "run_after": job.run_after or now, "created_at": now, "updated_at": now,
        }).first()
        queued += row is not None
    return queued
