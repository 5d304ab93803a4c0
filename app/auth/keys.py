"""The server's signing keys: created on first use, shared by every replica through the
database, published as a JWKS, rotated without breaking tokens already issued. Beside them, the
server's MAC keys (:func:`mac_key`) for links it issues and must recognise, such as page links.

One RS256 RSA key signs both access tokens and id_tokens: SMART requires RS256 for id_tokens
(SAL-SCOPES "Scopes for requesting identity data") and RSA verification is the cheapest check
on the hot path of every FHIR request. Rotation (:func:`rotate`) makes a new key the signer and
keeps the old public key in the JWKS until everything it signed has expired.

Private keys are stored as JWK JSON, encrypted with Fernet when ``THERABRIDGE_KEY_ENCRYPTION_KEY``
is set (a urlsafe-base64 32-byte key); they are never logged.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import weakref
from dataclasses import dataclass

import sqlalchemy as sa
from joserfc import jwk
from sqlalchemy.engine import Engine

from app.auth.crypto import new_secret, utcnow, in_seconds, as_aware
from app.auth.models import T
from app.db import dialect_insert, write_connection
from app.settings import Settings
from app.settings import get_settings

ALG = "RS256"
MAC_ALG = "HS256"  # rows of MAC keys in the same table: never published, never rotated
RSA_BITS = 2048
RELOAD_MIN_INTERVAL = 1.0  # seconds between reloads triggered by an unknown kid


def _fernet():  # type: ignore[no-untyped-def]
    secret = get_settings().key_encryption_key
    if not secret:
        return None
    from cryptography.fernet import Fernet

    return Fernet(secret.encode())


def _seal(private: dict) -> str:
    text = json.dumps(private)
    f = _fernet()
    return "fernet:" + f.encrypt(text.encode()).decode() if f else text


def _unseal(stored: str) -> dict:
    if stored.startswith("fernet:"):
        f = _fernet()
        if f is None:
            raise RuntimeError("signing keys are encrypted; set THERABRIDGE_KEY_ENCRYPTION_KEY")
        stored = f.decrypt(stored[len("fernet:"):].encode()).decode()
    return json.loads(stored)


@dataclass
class _Ring:
    signer: jwk.RSAKey | None = None
    public: dict[str, jwk.RSAKey] | None = None
    jwks: dict | None = None
    loaded_at: float = 0.0


_rings: "weakref.WeakKeyDictionary[Engine, _Ring]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _ring(engine: Engine) -> _Ring:
    ring = _rings.get(engine)
    if ring is None:
        with _lock:
            ring = _rings.setdefault(engine, _Ring())
    return ring


def _load(engine: Engine, ring: _Ring) -> None:
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T["key"]).where(T["key"].c.alg == ALG)
                            .order_by(T["key"].c.created_at.desc())).all()
    signer = None
    public: dict[str, jwk.RSAKey] = {}
    for row in rows:
        if row.publish_until is not None and as_aware(row.publish_until) <= now:
            continue
        key = jwk.RSAKey.import_key(_unseal(row.private_jwk))
        public[row.kid] = jwk.RSAKey.import_key(key.as_dict(private=False))
        if signer is None and (row.retire_after is None or as_aware(row.retire_after) > now):
            signer = key
    ring.signer = signer
    ring.public = public
    ring.jwks = {"keys": [dict(k.as_dict(private=False), alg=ALG, use="sig") for k in public.values()]}
    ring.loaded_at = time.monotonic()


def _create(engine: Engine) -> None:
    kid = new_secret(12)
    key = jwk.RSAKey.generate_key(RSA_BITS, parameters={"kid": kid})
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.insert(T["key"]).values(
            kid=kid, alg=ALG, private_jwk=_seal(key.as_dict(private=True)), created_at=utcnow()))


def signing_key(engine: Engine) -> jwk.RSAKey:
    """The current signing key, creating the first one if the database has none."""
    ring = _ring(engine)
    if ring.signer is None or time.monotonic() - ring.loaded_at > 300:
        _load(engine, ring)
        if ring.signer is None:
            _create(engine)
            _load(engine, ring)
    assert ring.signer is not None
    return ring.signer


def public_key(engine: Engine, kid: str) -> jwk.RSAKey | None:
    """The published key ``kid``; reloads (rate-limited) when a replica rotated meanwhile."""
    ring = _ring(engine)
    if ring.public is not None and kid in ring.public:
        return ring.public[kid]
    if ring.public is None or time.monotonic() - ring.loaded_at > RELOAD_MIN_INTERVAL:
        _load(engine, ring)
    return (ring.public or {}).get(kid)


def jwks(engine: Engine) -> dict:
    """The public JWKS document (``jwks_uri``)."""
    signing_key(engine)
    ring = _ring(engine)
    if time.monotonic() - ring.loaded_at > 60:
        _load(engine, ring)
    assert ring.jwks is not None
    return ring.jwks


def rotate(engine: Engine, settings: Settings) -> str:
    """Make a new key the signer; old keys stay published until their tokens expire.

    The longest-lived thing we sign is an app access token or an id_token (app lifetime), so
    old keys are kept that long plus the clock skew. Returns the new kid.
    """
    now = utcnow()
    keep = max(settings.app_token_lifetime, settings.backend_token_lifetime) + settings.clock_skew
    key = T["key"]
    with write_connection(engine) as conn, conn.begin():
        conn.execute(sa.update(key).where(key.c.retire_after.is_(None), key.c.alg == ALG)
                     .values(retire_after=now, publish_until=in_seconds(keep, now=now)))
    _create(engine)
    _load(engine, _ring(engine))
    ring = _ring(engine)
    assert ring.signer is not None
    return str(ring.signer.kid)


_mac_keys: "weakref.WeakKeyDictionary[Engine, dict[str, bytes]]" = weakref.WeakKeyDictionary()


def mac_key(engine: Engine, name: str) -> bytes:
    """The 256-bit secret named ``name`` for MACs of things the server issues and takes back.

    Created on first use by whichever process asks first and kept in the key table beside the
    signing keys (sealed the same way), so every server process shares it; another process
    creating it at the same moment inserts nothing and reads the winner's.
    """
    cached = _mac_keys.get(engine, {}).get(name)
    if cached is not None:
        return cached
    kid = f"mac:{name}"
    table = T["key"]
    query = sa.select(table.c.private_jwk).where(table.c.kid == kid, table.c.alg == MAC_ALG)
    with engine.connect() as conn:
        stored = conn.execute(query).scalar()
    if stored is None:
        # One autocommit statement: no transaction of this process's writers to wait for, and a
        # process creating it at the same moment makes this insert a no-op.
        row = {"kid": kid, "alg": MAC_ALG, "private_jwk": _seal({"kty": "oct", "k": new_secret(32)}),
               "created_at": utcnow()}
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(dialect_insert(conn, table).values(**row).on_conflict_do_nothing())
            stored = conn.execute(query).scalar_one()
    k = _unseal(stored)["k"]
    secret = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
    with _lock:
        _mac_keys.setdefault(engine, {})[name] = secret
    return secret
