"""Durable ISA13/GS06/ST02 control numbers, one sequence per tenant, trading partner and kind.

Implements ``payer_adapters.x12.control.ControlNumbers``. Each ``next`` is an atomic
``UPDATE … SET last_value = last_value + 1 … RETURNING`` in its own transaction, so numbers are
unique and increasing across threads, processes and restarts (X12 requires ISA13 to be unique
per sender for a trading partner, and 999/TA1 acknowledgments are matched on it).
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from app.db import dialect_insert, write_connection
from payer_adapters.x12.control import LIMITS, Kind


class X12ControlNumber(SQLModel, table=True):
    __tablename__ = "x12_control_number"
    tenant_id: str = Field(primary_key=True, max_length=64)
    partner: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=3)
    last_value: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


T = X12ControlNumber.__table__


class DatabaseControlNumbers:
    def __init__(self, engine: Engine, tenant_id: str) -> None:
        self.engine = engine
        self.tenant_id = tenant_id

    def next(self, partner: str, kind: Kind) -> int:
        key = (T.c.tenant_id == self.tenant_id) & (T.c.partner == partner) & (T.c.kind == kind)
        bump = T.update().where(key).values(last_value=T.c.last_value + 1).returning(T.c.last_value)
        with write_connection(self.engine) as conn, conn.begin():
            value = conn.execute(bump).scalar()
            if value is None:
                conn.execute(dialect_insert(conn, T).values(tenant_id=self.tenant_id, partner=partner, kind=kind,
                                                      last_value=0).on_conflict_do_nothing())
                value = conn.execute(bump).scalar_one()
        if value > LIMITS[kind]:
            raise OverflowError(f"{kind} control numbers exhausted for trading partner {partner}")
        return int(value)
