"""Tables of the payer side: submissions, inbound answers and each payer connection's circuit
breaker (the connections themselves are the directory's, ``app.directory.tables``).

``inbound_message`` keeps every payer answer as received, before it is acknowledged at the payer, so nothing is lost between fetch and post;
the SHA-256 makes a second delivery of the same bytes a no-op.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import BigId


class ClaimSubmission(SQLModel, table=True):
    """One idempotency key = one submission of one claim; ``batch_key`` names the batch (one
    file, or one API call) it went to the payer in, fixed before anything is sent."""

    __tablename__ = "claim_submission"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "submission_key", name="uq_claim_submission_key"),
        sa.Index("ix_claim_submission_claim", "tenant_id", "claim_id"),
        sa.Index("ix_claim_submission_group", "tenant_id", "group_control"),
        sa.Index("ix_claim_submission_batch", "tenant_id", "batch_key"),
        sa.Index("ix_claim_submission_trace", "tenant_id", "batch_trace"),
    )
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(max_length=64)
    submission_key: str = Field(max_length=64)
    claim_id: str = Field(max_length=64)
    connection_pk: int | None = None
    status: str = Field(max_length=16)  # queued | batched | submitted | rejected | superseded
    batch_key: str | None = Field(default=None, max_length=64)
    file_name: str | None = Field(default=None, max_length=200)
    group_control: str | None = Field(default=None, max_length=20)  # GS06 (999 AK102)
    set_controls: str | None = Field(default=None, max_length=200)  # ST02s, comma separated
    submission_id: str | None = Field(default=None, max_length=200)
    #: what the payer's acknowledgment calls the batch (the 837's BHT03, else the submission id)
    batch_trace: str | None = Field(default=None, max_length=50)
    created_at: datetime
    submitted_at: datetime | None = None


class InboundMessageRow(SQLModel, table=True):
    __tablename__ = "inbound_message"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "sha256", name="uq_inbound_message_sha"),
        sa.Index("ix_inbound_message_status", "tenant_id", "status"),
    )
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(max_length=64)
    connection_pk: int | None = None
    payer: str = Field(max_length=64)  # organization id
    name: str = Field(max_length=300)
    kind: str | None = Field(default=None, max_length=20)
    content_type: str = Field(max_length=20)
    sha256: str = Field(max_length=64)
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    received_at: datetime
    status: str = Field(max_length=16)  # stored | posted | duplicate | quarantined
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    posted_at: datetime | None = None


class PayerCircuit(SQLModel, table=True):
    """The circuit breaker of one operation (``claims``, ``status``, ``eligibility``,
    ``reports``) on one payer connection, shared by every worker: consecutive transport
    failures, and while open, until when nobody makes that call."""

    __tablename__ = "payer_circuit"
    connection_pk: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    operation: str = Field(primary_key=True, max_length=16)
    tenant_id: str = Field(max_length=64)
    failures: int = 0
    opened_until: datetime | None = None
    last_error: str | None = Field(default=None, max_length=300)
    updated_at: datetime


class ClaimStatusInquiry(SQLModel, table=True):
    """One claim status inquiry (a 276, a CHC claim status call, a PAS ``$inquire``) of one claim
    on one day, and the payer's answer: the row makes the follow-up idempotent by claim and day,
    tells the sweep when a claim was last asked and what the payer said, and names the work item
    the answer opened (``status_follow_up.py``)."""

    __tablename__ = "claim_status_inquiry"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "claim_id", "day", name="uq_claim_status_inquiry_day"),
        sa.Index("ix_claim_status_inquiry_trace", "tenant_id", "trace"),
    )
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(max_length=64)
    claim_id: str = Field(max_length=64)
    day: str = Field(max_length=10)  # the sweep day that asked (ISO date)
    connection_pk: int | None = None
    trace: str | None = Field(default=None, max_length=64)  # the patient control number asked about
    status: str = Field(max_length=16)  # queued | sent | answered | failed | skipped
    reference: str | None = Field(default=None, max_length=200)  # the 276 file name
    answer: str | None = Field(default=None, max_length=30)  # where the claim stands (claim status lifecycle)
    code: str | None = Field(default=None, max_length=40)  # the status as category:status[:entity]
    asked_at: datetime
    answered_at: datetime | None = None
    task_id: str | None = Field(default=None, max_length=64)
    task_closed_at: datetime | None = None


SUBMISSIONS = ClaimSubmission.__table__
INBOUND = InboundMessageRow.__table__
CIRCUITS = PayerCircuit.__table__
STATUS_INQUIRIES = ClaimStatusInquiry.__table__
