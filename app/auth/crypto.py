"""Small primitives shared by the authorization server: time, random secrets, hashing.

High-entropy secrets we generate ourselves (authorization codes, refresh tokens, client
secrets, initial access tokens) are stored as SHA-256 digests: a leaked database row cannot be
replayed, and a fast hash is enough because the input has 256 bits of entropy. Human passwords
use argon2 instead (``app.auth.users``).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    """Aware UTC now (the ``UTCDateTime`` columns refuse naive datetimes)."""
    return datetime.now(timezone.utc)


def in_seconds(seconds: int, *, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=seconds)


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret with ``8 * nbytes`` bits of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """Hex SHA-256 of a generated secret, the form in which secrets are stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def as_aware(value: datetime) -> datetime:
    """Some drivers hand back naive datetimes for UTC columns; make them aware."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
