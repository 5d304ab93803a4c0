"""The payer directory's table: one row per payer Organization of a tenant that we reach.

``payer_connection.credentials`` holds Fernet ciphertext only (``secrets.py``); the plain
settings are what an operator may see.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import BigId


class PayerConnection(SQLModel, table=True):
    __tablename__ = "payer_connection"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "organization_id", name="uq_payer_connection_org"),)
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(max_length=64)
    organization_id: str = Field(max_length=64)  # Organization/<id> of the payer
    payer_id: str | None = Field(default=None, max_length=80)  # its payer-id identifier
    kind: str = Field(max_length=40)  # adapter kind
    settings: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # JSON, no secrets
    credentials: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))  # Fernet token
    profile: str | None = Field(default=None, max_length=40)  # medicare | commercial | workers-comp
    timely_filing_days: int | None = None
    status_follow_up_days: int | None = None  # days without an answer before the payer is asked
    auto_submit: bool = False
    created_at: datetime
    updated_at: datetime


CONNECTIONS = PayerConnection.__table__
