"""Access tokens, id_tokens, refresh tokens, introspection (RFC 7662) and revocation (RFC 7009).

Access tokens are RS256 JWTs (``app.auth.keys``) so any replica verifies them without a
database read. Claims: ``iss`` (public URL), ``sub`` (user or client), ``aud`` (FHIR base),
``exp``, ``iat``, ``jti``, ``client_id``, ``scope``, ``tenant``, ``gid`` (the grant: one
authorization and everything issued from it) and, when set, ``patient``, ``encounter``,
``fhirUser``.

Revocation puts a ``jti`` or a ``gid`` on the ``auth_revoked`` list. Verifiers keep a
per-process copy refreshed every ``THERABRIDGE_REVOCATION_POLL_SECONDS`` (default 1 s), so a
revocation is effective at once in the process that made it and within that interval in the
others. Refresh tokens are opaque random strings stored hashed.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from joserfc import jws, jwt
from joserfc.errors import JoseError
from sqlalchemy.engine import Connection, Engine

from app.auth import keys
from app.auth.crypto import as_aware, digest, in_seconds, new_secret, utcnow
from app.auth.models import T
from app.db import write_connection
from app.settings import Settings

REVOCATION_RELOAD_SECONDS = 600.0  # full reload, dropping revocations of tokens that expired
VERIFIED_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired, revoked or meant for someone else."""


@dataclass(frozen=True)
class Grant:
    """What one token response carries; the same for access tokens and refresh rows."""

    tenant: str
    client_id: str
    scope: str
    grant_id: str
    subject: str
    user_id: int | None = None
    context: dict[str, Any] = field(default_factory=dict)  # patient, encounter, fhirUser, …


def issuer(settings: Settings) -> str:
    """Our OAuth/OpenID issuer: the public URL (openid-configuration is served beneath it)."""
    return settings.public_url.rstrip("/")


# -- access tokens -------------------------------------------------------------------------

def mint_access_token(engine: Engine, settings: Settings, grant: Grant, lifetime: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer(settings), "sub": grant.subject, "aud": settings.fhir_base,
        "iat": now, "exp": now + lifetime, "jti": new_secret(16),
        "client_id": grant.client_id, "scope": grant.scope, "tenant": grant.tenant,
        "gid": grant.grant_id,
    }
    for name in ("patient", "encounter", "fhirUser"):
        if grant.context.get(name):
            claims[name] = grant.context[name]
    key = keys.signing_key(engine)
    return jwt.encode({"alg": keys.ALG, "kid": key.kid, "typ": "at+jwt"}, claims, key)


def mint_id_token(engine: Engine, settings: Settings, grant: Grant, *, nonce: str | None) -> str:
    """OpenID Connect id_token, RS256 (SAL-SCOPES); ``aud`` is the client (OIDC Core §2)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer(settings), "sub": grant.subject, "aud": grant.client_id,
        "iat": now, "exp": now + settings.app_token_lifetime,
    }
    if grant.context.get("fhirUser"):
        claims["fhirUser"] = grant.context["fhirUser"]
    if nonce:
        claims["nonce"] = nonce
    key = keys.signing_key(engine)
    return jwt.encode({"alg": keys.ALG, "kid": key.kid, "typ": "JWT"}, claims, key)


class _Verifier:
    """Per-engine state for the hot path: verified tokens and the revocation list."""

    def __init__(self) -> None:
        self.verified: dict[str, dict[str, Any]] = {}
        self.revoked: set[str] = set()
        self.polled_at = 0.0
        self.reloaded_at = 0.0
        self.watermark = None
        self.lock = threading.Lock()

    def refresh_revocations(self, engine: Engine, poll: float, force: bool = False) -> None:
        if not force and time.monotonic() - self.polled_at < poll:
            return
        with self.lock:
            if not force and time.monotonic() - self.polled_at < poll:
                return
            if time.monotonic() - self.reloaded_at > REVOCATION_RELOAD_SECONDS:
                self.revoked, self.watermark, self.reloaded_at = set(), None, time.monotonic()
            table = T["revoked"]
            query = sa.select(table.c.id, table.c.revoked_at)
            if self.watermark is not None:
                query = query.where(table.c.revoked_at >= self.watermark)
            else:
                query = query.where(table.c.expires_at > utcnow())
            with engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                self.revoked.add(row.id)
                stamp = as_aware(row.revoked_at)
                if self.watermark is None or stamp > self.watermark:
                    self.watermark = stamp
            if self.watermark is None:
                self.watermark = utcnow()
            self.polled_at = time.monotonic()


_VERIFIER_ATTR = "_therabridge_token_verifier"
_verifier_lock = threading.Lock()


def _verifier(engine: Engine) -> _Verifier:
    """The engine's verifier, kept on the engine object itself (one attribute read per request)."""
    v = getattr(engine, _VERIFIER_ATTR, None)
    if v is None:
        with _verifier_lock:
            v = getattr(engine, _VERIFIER_ATTR, None) or _Verifier()
            setattr(engine, _VERIFIER_ATTR, v)
    return v


def verify_access_token(engine: Engine, settings: Settings, token: str) -> dict[str, Any]:
    """Claims of a valid, unexpired, unrevoked access token for our FHIR base, else
    :class:`InvalidToken`. Signature checks are cached per token string until it expires."""
    v = _verifier(engine)
    now = time.time()
    claims = v.verified.get(token)
    if claims is None:
        claims = _decode(engine, settings, token, now)
        if len(v.verified) >= VERIFIED_CACHE_SIZE:
            v.verified.clear()
        v.verified[token] = claims
    if claims["exp"] <= now:
        v.verified.pop(token, None)
        raise InvalidToken("token expired")
    v.refresh_revocations(engine, settings.revocation_poll_seconds)
    if claims["jti"] in v.revoked or claims["gid"] in v.revoked:
        raise InvalidToken("token revoked")
    return claims


def _decode(engine: Engine, settings: Settings, token: str, now: float) -> dict[str, Any]:
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken("malformed token") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != keys.ALG:
        raise InvalidToken("malformed token")
    key = keys.public_key(engine, kid)
    if key is None:
        raise InvalidToken("unknown signing key")
    try:
        claims = jwt.decode(token, key, algorithms=[keys.ALG]).claims
    except (JoseError, ValueError) as exc:
        raise InvalidToken("bad signature") from exc
    if claims.get("iss") != issuer(settings) or claims.get("aud") != settings.fhir_base:
        raise InvalidToken("token not issued for this server")
    for name, kind in (("exp", int), ("jti", str), ("gid", str), ("tenant", str),
                       ("client_id", str), ("scope", str)):
        if not isinstance(claims.get(name), kind):
            raise InvalidToken("token lacks required claims")
    return claims


def revoke_ids(conn: Connection, ids: list[str], expires_at) -> None:  # type: ignore[no-untyped-def]
    """Put jti/grant ids on the revocation list (inside the caller's write transaction)."""
    table = T["revoked"]
    now = utcnow()
    existing = set(conn.execute(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars())
    for ident in ids:
        if ident not in existing:
            conn.execute(sa.insert(table).values(id=ident, revoked_at=now, expires_at=expires_at))


def note_local_revocation(engine: Engine, ids: list[str]) -> None:
    """Make a revocation effective in this process immediately."""
    _verifier(engine).revoked.update(ids)


def revoke_grant(engine: Engine, settings: Settings, conn: Connection, grant_id: str) -> None:
    """Revoke everything issued under one grant: its access tokens and refresh tokens."""
    conn.execute(sa.update(T["refresh"]).where(T["refresh"].c.grant_id == grant_id).values(revoked=True))
    revoke_ids(conn, [grant_id], in_seconds(max(settings.refresh_token_lifetime, settings.app_token_lifetime)))
    note_local_revocation(engine, [grant_id])


# -- refresh tokens -----------------------------------------------------------------------

def issue_refresh_token(conn: Connection, settings: Settings, grant: Grant) -> str:
    secret = new_secret(32)
    now = utcnow()
    conn.execute(sa.insert(T["refresh"]).values(
        token_hash=digest(secret), grant_id=grant.grant_id, tenant_id=grant.tenant,
        client_id=grant.client_id, user_id=grant.user_id, scope=grant.scope,
        context=json.dumps(grant.context), created_at=now,
        expires_at=in_seconds(settings.refresh_token_lifetime, now=now)))
    return secret


def find_refresh_token(conn: Connection, secret: str):  # type: ignore[no-untyped-def]
    return conn.execute(sa.select(T["refresh"]).where(T["refresh"].c.token_hash == digest(secret))).first()


# -- introspection and revocation endpoints ---------------------------------------------

def introspect(engine: Engine, settings: Settings, token: str) -> dict[str, Any]:
    """RFC 7662 response; inactive tokens get exactly ``{"active": false}`` (SAL-INTRO)."""
    try:
        claims = verify_access_token(engine, settings, token)
    except InvalidToken:
        claims = None
    if claims is not None:
        out = {"active": True, "token_type": "Bearer"}
        for name in ("scope", "client_id", "exp", "iat", "iss", "sub", "aud", "patient",
                     "encounter", "fhirUser", "tenant"):
            if name in claims:
                out[name] = claims[name]
        return out
    with engine.connect() as conn:
        row = find_refresh_token(conn, token)
    if row is None or row.revoked or row.rotated_to or as_aware(row.expires_at) <= utcnow():
        return {"active": False}
    context = json.loads(row.context)
    out = {"active": True, "token_type": "refresh_token", "scope": row.scope,
           "client_id": row.client_id, "exp": int(as_aware(row.expires_at).timestamp()),
           "iss": issuer(settings), "tenant": row.tenant_id}
    for name in ("patient", "encounter", "fhirUser"):
        if context.get(name):
            out[name] = context[name]
    return out


def revoke(engine: Engine, settings: Settings, token: str, client_id: str | None) -> None:
    """RFC 7009: revoke an access or refresh token. Unknown tokens are silently ignored (§2.2).

    Revoking a refresh token revokes its whole grant, access tokens included (§2.1 SHOULD).
    When ``client_id`` is given, only that client's tokens can be revoked.
    """
    try:
        claims = verify_access_token(engine, settings, token)
    except InvalidToken:
        claims = None
    with write_connection(engine) as conn, conn.begin():
        if claims is not None:
            if client_id is not None and claims["client_id"] != client_id:
                return
            exp = in_seconds(int(claims["exp"] - time.time()) + settings.clock_skew)
            revoke_ids(conn, [claims["jti"]], exp)
            note_local_revocation(engine, [claims["jti"]])
            return
        row = find_refresh_token(conn, token)
        if row is None or (client_id is not None and row.client_id != client_id):
            return
        revoke_grant(engine, settings, conn, row.grant_id)
