"""``private_key_jwt`` client authentication for SMART Backend Services (SAL-ASYM, RFC 7523 §3).

authlib's :class:`JWTBearerClientAssertion` checks ``iss == sub``, ``aud`` and ``exp`` and
calls us for the key and the ``jti``. SMART asks for more, added here:

- header: ``alg`` in RS384/ES384 (and RS256/ES256), never ``none`` or HMAC; ``typ`` = ``JWT``;
  ``kid`` present; ``jku`` only when it equals the client's registered JWKS URL (SAL-ASYM §2.5);
- ``exp`` at most ``assertion_max_lifetime`` (5 min) ahead, plus ``clock_skew``;
- ``jti`` never reused by the same client, checked with a unique index in the database so the
  check holds across processes; entries live until ``exp + clock_skew``;
- keys from the registered JWKS and/or JWKS URL, filtered by ``kid`` and key type; exactly one
  must match. JWKS URLs are fetched with httpx, cached as their ``Cache-Control`` allows (not at
  all without one), and fetched again once when the ``kid`` is unknown.

Every failure is ``invalid_client`` (RFC 6749 §5.2).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import sqlalchemy as sa
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.auth.crypto import utcnow, in_seconds
from app.auth.models import ASYMMETRIC_KINDS, T
from app.db import write_connection
from app.settings import Settings

ASSERTION_TYPE = JWTBearerClientAssertion.CLIENT_ASSERTION_TYPE
ALLOWED_ALGS = ("RS384", "ES384", "RS256", "ES256")
KTY_FOR_ALG = {"RS384": "RSA", "RS256": "RSA", "ES384": "EC", "ES256": "EC"}
JWKS_FETCH_TIMEOUT = 5.0
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.I)


@dataclass
class _CachedJwks:
    keys: list[dict[str, Any]]
    fresh_until: float


@dataclass
class JwksFetcher:
    """Fetches client JWKS URLs, caching each for as long as its Cache-Control allows."""

    transport: httpx.BaseTransport | None = None
    _cache: dict[str, _CachedJwks] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self, url: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        cached = self._cache.get(url)
        if cached and not refresh and cached.fresh_until > time.monotonic():
            return cached.keys
        try:
            with httpx.Client(transport=self.transport, timeout=JWKS_FETCH_TIMEOUT,
                              follow_redirects=False) as client:
                resp = client.get(url, headers={"Accept": "application/json"})
            resp.raise_for_status()
            keys = resp.json().get("keys")
            if not isinstance(keys, list):
                raise ValueError("no keys")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise InvalidClientError(description="The client's JWKS URL could not be read.") from exc
        ttl = cache_lifetime(resp.headers.get("cache-control"))
        with self._lock:
            if ttl > 0:
                self._cache[url] = _CachedJwks(keys, time.monotonic() + ttl)
            else:
                self._cache.pop(url, None)
        return keys


def cache_lifetime(cache_control: str | None) -> int:
    """Seconds a response may be reused: ``max-age`` unless ``no-store``/``no-cache``; 0 when absent."""
    if not cache_control:
        return 0
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    m = _MAX_AGE.search(lowered)
    return int(m.group(1)) if m else 0


DEFAULT_FETCHER = JwksFetcher()


@dataclass
class _FormRequest:
    """The two attributes authlib's client-auth methods use."""

    form: dict[str, str]
    client: Any = None


class SmartClientAssertion(JWTBearerClientAssertion):
    """One instance per request: it remembers the assertion header between authlib's steps."""

    def __init__(self, engine: Engine, settings: Settings, audiences: list[str],
                 fetcher: JwksFetcher = DEFAULT_FETCHER) -> None:
        super().__init__(validate_jti=True, leeway=settings.clock_skew)
        self.engine = engine
        self.settings = settings
        self.audiences = audiences
        self.fetcher = fetcher
        self.header: dict[str, Any] = {}

    # -- authlib hooks ----------------------------------------------------------------------
    def get_audiences(self) -> list[str]:
        return self.audiences

    def extract_assertion(self, assertion: str):  # type: ignore[no-untyped-def]
        header, claims = super().extract_assertion(assertion)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise InvalidClientError(description=f"Assertion alg must be one of {', '.join(ALLOWED_ALGS)}.")
        if str(header.get("typ", "")).upper() != "JWT":
            raise InvalidClientError(description="Assertion header typ must be JWT.")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise InvalidClientError(description="Assertion header kid is required.")
        self.header = header
        return header, claims

    def resolve_client_public_key(self, client: Any) -> jwk.Key:
        kid, alg = self.header["kid"], self.header["alg"]
        jku = self.header.get("jku")
        if jku is not None and (client.jwks_uri is None or jku != client.jwks_uri):
            raise InvalidClientError(description="jku is not the client's registered JWKS URL.")

        def candidates(refresh: bool) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            if jku is None and client.jwks:
                found += json.loads(client.jwks).get("keys", [])
            if client.jwks_uri:
                found += self.fetcher.keys(client.jwks_uri, refresh=refresh)
            return [k for k in found if isinstance(k, dict) and k.get("kid") == kid
                    and k.get("kty") == KTY_FOR_ALG[alg]]

        matches = candidates(refresh=False)
        if not matches and client.jwks_uri:
            matches = candidates(refresh=True)
        if len(matches) != 1:
            raise InvalidClientError(description="No single registered key matches the assertion kid.")
        try:
            key = jwk.import_key(matches[0])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="The registered key is unusable.") from exc
        if key.is_private:
            raise InvalidClientError(description="The registered key is unusable.")
        return key

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> jwt.Claims:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=[self.header["alg"]])
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="Assertion signature is invalid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: jwt.Claims) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidClientError(description="Assertion exp must be an integer.")
        latest = time.time() + self.settings.assertion_max_lifetime + self.settings.clock_skew
        if exp > latest:
            raise InvalidClientError(description="Assertion exp is more than 5 minutes ahead.")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidClientError(description="Assertion jti is required.")
        super().verify_claims(claims)

    def validate_jti(self, claims: jwt.Claims, jti: str) -> bool:
        return remember_jti(self.engine, claims["iss"], jti,
                            int(claims["exp"]) + self.settings.clock_skew)

    def authenticate_client(self, client: Any) -> Any:
        if client.kind not in ASYMMETRIC_KINDS:
            raise InvalidClientError(description="The client is not registered for private_key_jwt.")
        return client


_last_purge = 0.0


def remember_jti(engine: Engine, client_id: str, jti: str, until_epoch: int) -> bool:
    """Record ``jti``; False when the client used it before (unique index, any process)."""
    global _last_purge
    table = T["jti"]
    expires = in_seconds(max(0, until_epoch - int(time.time())))
    try:
        with write_connection(engine) as conn, conn.begin():
            if time.monotonic() - _last_purge > 60:
                conn.execute(sa.delete(table).where(table.c.expires_at < utcnow()))
                _last_purge = time.monotonic()
            conn.execute(sa.insert(table).values(client_id=client_id, jti=jti[:255], expires_at=expires))
    except IntegrityError:
        return False
    return True


def authenticate_assertion(engine: Engine, settings: Settings, audiences: list[str], form: dict[str, str],
                           query_client: Callable[[str], Any],
                           fetcher: JwksFetcher = DEFAULT_FETCHER) -> Any:
    """The client a valid ``client_assertion`` in ``form`` proves, else ``InvalidClientError``."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClientError(description="client_assertion_type must be jwt-bearer.")
    if not form.get("client_assertion"):
        raise InvalidClientError(description="client_assertion is required.")
    method = SmartClientAssertion(engine, settings, audiences, fetcher)
    client = method(query_client, _FormRequest(form))
    if client is None:
        raise InvalidClientError(description="Client authentication failed.")
    return client
