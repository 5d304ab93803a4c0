"""Deleting what has expired: codes, pending requests, refresh tokens, revocation entries,
replay-cache entries, launch contexts, initial access tokens. Safe to run at any time from
any replica (e.g. hourly from the job runner); the checks never rely on a row being deleted.
Audit events are never deleted here."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.auth.crypto import utcnow
from app.auth.models import T
from app.db import write_connection

# table -> its expiry column; codes are kept a day past expiry so a late reuse is still detected.
EXPIRING = {"code": "expires_at", "pending": "expires_at", "refresh": "expires_at", "revoked": "expires_at",
            "jti": "expires_at", "launch": "expires_at", "initial": "expires_at"}
GRACE = {"code": timedelta(days=1)}


def purge_expired(engine: Engine) -> dict[str, int]:
    """Delete expired rows; returns how many per table."""
    now = utcnow()
    counts: dict[str, int] = {}
    with write_connection(engine) as conn, conn.begin():
        for name, column in EXPIRING.items():
            table = T[name]
            cutoff = now - GRACE.get(name, timedelta(0))
            counts[name] = conn.execute(sa.delete(table).where(table.c[column] < cutoff)).rowcount
    return counts
