"""Denial patterns: which claims a payer denied for which procedure code and reason, kept so that
a repeated pattern is noticed with a few indexed statements per posting instead of a scan.

``denial_observation`` holds one row per (tenant, payer, code, reason, claim): a redelivered
answer adds nothing. A row joins the rule proposal it was counted for (``proposal``, the Task
id), so a proposal someone dismissed (or accepted) is never proposed again from the same claims:
only later denials open a new window. ``rule_proposal_policy`` is a practice's own threshold
(``therabridge payer-rules policy``); without a row the defaults of ``data/rule_proposals.json`` hold.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from app.db import dialect_insert, write_connection

DATA = Path(__file__).parent / "data" / "rule_proposals.json"


class DenialObservation(SQLModel, table=True):
    __tablename__ = "denial_observation"
    __table_args__ = (sa.Index("ix_denial_observation_window", "tenant_id", "payer", "code", "reason", "denied_on"),)
    tenant_id: str = Field(primary_key=True, max_length=64)
    payer: str = Field(primary_key=True, max_length=100)  # Organization/<id>
    code: str = Field(primary_key=True, max_length=16)  # the denied line's procedure code
    reason: str = Field(primary_key=True, max_length=16)  # group-CARC, e.g. CO-50
    claim_id: str = Field(primary_key=True, max_length=64)
    denied_on: date
    proposal: str | None = Field(default=None, max_length=64)  # the rule-proposal Task that counted it


class RuleProposalPolicy(SQLModel, table=True):
    __tablename__ = "rule_proposal_policy"
    tenant_id: str = Field(primary_key=True, max_length=64)
    min_claims: int
    window_days: int


OBS = DenialObservation.__table__
POLICY = RuleProposalPolicy.__table__


@dataclass(frozen=True)
class Pattern:
    """The same payer denying the same procedure code for the same reason."""

    payer: str  # Organization/<id>
    code: str
    reason: str  # group-CARC

    def _where(self, tenant_id: str) -> Any:
        return ((OBS.c.tenant_id == tenant_id) & (OBS.c.payer == self.payer) & (OBS.c.code == self.code)
                & (OBS.c.reason == self.reason))


@dataclass(frozen=True)
class Policy:
    min_claims: int
    window_days: int


@cache
def settings() -> dict[str, Any]:
    return json.loads(DATA.read_text())  # type: ignore[no-any-return]


def policy(conn: Connection, tenant_id: str) -> Policy:
    """The practice's threshold, else the defaults."""
    row = conn.execute(sa.select(POLICY.c.min_claims, POLICY.c.window_days)
                       .where(POLICY.c.tenant_id == tenant_id)).first()
    if row is None:
        return Policy(settings()["min_claims"], settings()["window_days"])
    return Policy(int(row[0]), int(row[1]))


def policy_problems(min_claims: int, window_days: int) -> list[str]:
    out = []
    for name, value in (("min_claims", min_claims), ("window_days", window_days)):
        low, high = settings()["limits"][name]
        if not low <= value <= high:
            out.append(f"{name} must be between {low} and {high}, not {value}")
    return out


def set_policy(engine: Engine, tenant_id: str, min_claims: int, window_days: int) -> Policy:
    """Store the practice's threshold (ValueError when out of bounds)."""
    problems = policy_problems(min_claims, window_days)
    if problems:
        raise ValueError("; ".join(problems))
    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, POLICY).values(tenant_id=tenant_id, min_claims=min_claims, window_days=window_days)
        conn.execute(stmt.on_conflict_do_update(index_elements=[POLICY.c.tenant_id],
                                                set_={"min_claims": min_claims, "window_days": window_days}))
    return Policy(min_claims, window_days)


def record(conn: Connection, tenant_id: str, pattern: Pattern, claim_id: str, day: date) -> bool:
    """Note that ``claim_id`` was denied this way; False when it was already noted."""
    stmt = dialect_insert(conn, OBS).values(tenant_id=tenant_id, payer=pattern.payer, code=pattern.code,
                                            reason=pattern.reason, claim_id=claim_id, denied_on=day)
    return bool(conn.execute(stmt.on_conflict_do_nothing()).rowcount)


def uncounted(conn: Connection, tenant_id: str, pattern: Pattern, since: date) -> list[tuple[str, date]]:
    """(claim id, day) of the denials since ``since`` that no proposal has counted, oldest first."""
    q = (sa.select(OBS.c.claim_id, OBS.c.denied_on)
         .where(pattern._where(tenant_id) & (OBS.c.denied_on >= since) & OBS.c.proposal.is_(None))
         .order_by(OBS.c.denied_on, OBS.c.claim_id))
    return [(r[0], r[1]) for r in conn.execute(q)]


def proposals(conn: Connection, tenant_id: str, pattern: Pattern) -> list[str]:
    """The rule-proposal Tasks that counted denials of ``pattern`` (at most one of them is open:
    a new one opens only when none is)."""
    q = (sa.select(OBS.c.proposal).distinct()
         .where(pattern._where(tenant_id) & OBS.c.proposal.is_not(None)))
    return sorted(str(r[0]) for r in conn.execute(q))


def assign(conn: Connection, tenant_id: str, pattern: Pattern, claim_ids: list[str], proposal: str) -> None:
    conn.execute(OBS.update().where(pattern._where(tenant_id) & OBS.c.claim_id.in_(claim_ids))
                 .values(proposal=proposal))
