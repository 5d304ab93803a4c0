"""Practices a user may work in: their own tenant plus the ones granted to them.

A billing company's staff serve several practices. Each practice stays a separate tenant and
every access token stays confined to exactly one of them (the ``tenant`` claim); a grant only
widens the list of practices the person may *pick* at sign-in, or switch to with their refresh
token (``app.auth.grants``). A grant carries the user's role in that practice, so the role
ceiling that narrows scopes is the practice's, and ``admin`` is never granted this way: a
practice's administrators are its own users.

Revoking a grant also revokes what was issued for that practice from the user's refresh tokens
and codes, so an app cannot keep reading a practice the user lost.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.auth import tokens
from app.auth.crypto import utcnow
from app.auth.models import T
from app.auth.scopes import known_roles
from app.db import Tenant, write_connection
from app.settings import Settings

GRANTABLE_ROLES_EXCLUDE = ("admin",)
TENANT = Tenant.__table__  # type: ignore[attr-defined]


class PracticeError(ValueError):
    """Invalid grant or revocation request (a message fit to show the operator)."""


@dataclass(frozen=True)
class Practice:
    """One practice a user may work in, with their role there."""

    id: str
    name: str
    role: str
    home: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def practices_of(target: Engine | Connection, user: Any) -> list[Practice]:
    """The user's own practice first, then granted ones by id."""
    grants = T["practice_grant"]
    query = (sa.select(grants.c.tenant_id, grants.c.role, TENANT.c.name)
             .join(TENANT, TENANT.c.id == grants.c.tenant_id)
             .where(grants.c.user_id == user.id).order_by(grants.c.tenant_id))
    home_query = sa.select(TENANT.c.name).where(TENANT.c.id == user.tenant_id)
    if isinstance(target, Connection):
        rows, home_name = target.execute(query).all(), target.execute(home_query).scalar()
    else:
        with target.connect() as conn:
            rows, home_name = conn.execute(query).all(), conn.execute(home_query).scalar()
    home = Practice(user.tenant_id, home_name or user.tenant_id, user.role, True)
    return [home, *(Practice(r.tenant_id, r.name, r.role, False) for r in rows if r.tenant_id != user.tenant_id)]


def practice_for(target: Engine | Connection, user: Any, practice: str | None) -> Practice | None:
    """The practice ``practice`` if the user may work in it (``None`` = their own), else ``None``."""
    wanted = practice or user.tenant_id
    return next((p for p in practices_of(target, user) if p.id == wanted), None)


def _user(conn: Connection, tenant: str, username: str) -> Any:
    user = conn.execute(sa.select(T["user"]).where(T["user"].c.tenant_id == tenant,
                                                   T["user"].c.username == username)).first()
    if user is None:
        raise PracticeError(f"no user {username!r} in tenant {tenant!r}")
    return user


def grant_practice(engine: Engine, *, tenant: str, username: str, practice: str,
                   role: str | None = None) -> dict[str, Any]:
    """Let ``tenant/username`` work in ``practice`` as ``role`` (default: their own role)."""
    with write_connection(engine) as conn, conn.begin():
        user = _user(conn, tenant, username)
        if conn.execute(sa.select(TENANT.c.id).where(TENANT.c.id == practice)).first() is None:
            raise PracticeError(f"unknown practice {practice!r}")
        if practice == user.tenant_id:
            raise PracticeError("a user always works in their own practice; grant other practices")
        chosen = role or user.role
        if chosen not in known_roles() or chosen in GRANTABLE_ROLES_EXCLUDE:
            allowed = [r for r in known_roles() if r not in GRANTABLE_ROLES_EXCLUDE]
            raise PracticeError(f"role in another practice must be one of {', '.join(allowed)}")
        table = T["practice_grant"]
        changed = conn.execute(sa.update(table).where(table.c.user_id == user.id, table.c.tenant_id == practice)
                               .values(role=chosen)).rowcount
        if not changed:
            conn.execute(sa.insert(table).values(user_id=user.id, tenant_id=practice, role=chosen,
                                                 created_at=utcnow()))
    return {"tenant": tenant, "username": username, "practice": practice, "role": chosen}


def revoke_practice(engine: Engine, settings: Settings, *, tenant: str, username: str,
                    practice: str) -> dict[str, Any]:
    """Withdraw a grant and revoke every authorization the user holds for that practice."""
    with write_connection(engine) as conn, conn.begin():
        user = _user(conn, tenant, username)
        table = T["practice_grant"]
        removed = conn.execute(sa.delete(table).where(table.c.user_id == user.id,
                                                      table.c.tenant_id == practice)).rowcount
        if not removed:
            raise PracticeError(f"user {username!r} has no grant for practice {practice!r}")
        grant_ids: set[str] = set()
        for name in ("refresh", "code"):
            t = T[name]
            grant_ids.update(conn.execute(sa.select(t.c.grant_id).where(
                t.c.user_id == user.id, t.c.tenant_id == practice)).scalars())
        for grant_id in sorted(grant_ids):
            tokens.revoke_grant(engine, settings, conn, grant_id)
    return {"tenant": tenant, "username": username, "practice": practice, "revoked_authorizations": len(grant_ids)}


def list_practices(engine: Engine, *, tenant: str, username: str) -> dict[str, Any]:
    with engine.connect() as conn:
        user = _user(conn, tenant, username)
        found = practices_of(conn, user)
    return {"tenant": tenant, "username": username, "practices": [p.as_json() for p in found]}

