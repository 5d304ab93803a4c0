"""People who log in at the authorization endpoint: argon2 password hashes and a throttle.

After ``login_max_failures`` consecutive failures an account is locked for
``login_lockout_seconds``; while locked, even the right password is refused, so guessing
gets a handful of tries per lockout window. Unknown usernames cost the same argon2 work as
known ones so that response timing does not reveal which accounts exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Engine

from app.auth.crypto import as_aware, in_seconds, utcnow
from app.auth.models import T
from app.db import write_connection
from app.settings import Settings

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class LoginResult:
    user: Any | None
    locked: bool = False


def check_login(engine: Engine, settings: Settings, tenant: str, username: str, password: str) -> LoginResult:
    """Verify a password, counting failures and applying the lockout."""
    table = T["user"]
    with engine.connect() as conn:
        user = conn.execute(sa.select(table).where(
            table.c.tenant_id == tenant, table.c.username == username)).first()
    if user is None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(None)
    now = utcnow()
    if user.locked_until is not None and as_aware(user.locked_until) > now:
        return LoginResult(None, locked=True)
    ok = _verify(user.password_hash, password)
    with write_connection(engine) as conn, conn.begin():
        if ok:
            conn.execute(sa.update(table).where(table.c.id == user.id)
                         .values(failed_logins=0, locked_until=None))
            return LoginResult(user)
        failures = conn.execute(sa.select(table.c.failed_logins).where(table.c.id == user.id)).scalar_one() + 1
        values: dict[str, Any] = {"failed_logins": failures}
        if failures >= settings.login_max_failures:
            values = {"failed_logins": 0, "locked_until": in_seconds(settings.login_lockout_seconds, now=now)}
        conn.execute(sa.update(table).where(table.c.id == user.id).values(**values))
    return LoginResult(None, locked="locked_until" in values)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def get_user(engine: Engine, user_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(T["user"]).where(T["user"].c.id == user_id)).first()
