"""OAuth2 client credentials for the API adapters (``fhir-payer``, ``clearinghouse-json``).

Settings (``auth``): ``none``; ``client_secret`` (the secret in the form body, with
``token_url``, ``client_id``, ``client_secret``); ``private_key_jwt`` (SMART Backend Services: a
JWT signed with ``private_key`` — a JWK dict or PEM — ``algorithm`` RS384/ES384, ``key_id``;
iss = sub = client_id, aud = token_url, 5-minute expiry, unique jti). ``scope`` is sent when set.

Tokens are cached per process until ``token_margin`` seconds (60) before they expire; the cache
is safe to lose (it refills on demand). A refused client (400/401/403 from the token endpoint) is
a :class:`PayerRejection`: retrying cannot fix a configuration problem.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import import_key

from payer_adapters.errors import (
    PayerRejection, TransientPayerError, json_body, operation_outcome, raise_for_http_status, send,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}  # (token_url, client_id, scope) -> (token, expiry)


def clear_cache() -> None:
    """Forget every cached token, as a new process starts (tests start each case this way)."""
    _TOKENS.clear()


class TokenSource:
    """The ``Authorization`` header for one client, from the per-process token cache."""

    def __init__(self, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.mode = settings.get("auth", "none")
        if self.mode not in ("none", "client_secret", "private_key_jwt"):
            raise ValueError("fhir-payer 'auth' must be none, client_secret or private_key_jwt")
        if self.mode != "none":
            for k in ("token_url", "client_id"):
                if not settings.get(k):
                    raise ValueError(f"fhir-payer settings need {k!r} for auth {self.mode}")
        if self.mode == "client_secret" and not settings.get("client_secret"):
            raise ValueError("fhir-payer settings need 'client_secret'")
        if self.mode == "private_key_jwt" and not settings.get("private_key"):
            raise ValueError("fhir-payer settings need 'private_key'")
        self.s = settings
        self.http = http
        self.margin = float(settings.get("token_margin", 60))
        self._lock = asyncio.Lock()

    @property
    def _key(self) -> tuple[str, str, str]:
        return (self.s.get("token_url", ""), self.s.get("client_id", ""), self.s.get("scope", ""))

    def forget(self) -> None:
        """Drop the cached token (the payer answered 401 with it)."""
        _TOKENS.pop(self._key, None)

    async def header(self) -> dict[str, str]:
        if self.mode == "none":
            return {}
        async with self._lock:
            cached = _TOKENS.get(self._key)
            if cached and cached[1] - self.margin > time.monotonic():
                return {"Authorization": f"Bearer {cached[0]}"}
            token, ttl = await self._fetch()
            _TOKENS[self._key] = (token, time.monotonic() + ttl)
            return {"Authorization": f"Bearer {token}"}

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.s.get("scope"):
            form["scope"] = self.s["scope"]
        if self.mode == "client_secret":
            form.update(client_id=self.s["client_id"], client_secret=self.s["client_secret"])
        else:
            form.update(client_assertion_type=ASSERTION_TYPE, client_assertion=self._assertion())
        resp = await send(self.http, "POST", self.s["token_url"], "token request", data=form,
                          timeout=float(self.s.get("timeout", 30)))
        if resp.status_code in (400, 401, 403):
            # A refused client is a configuration problem: retrying will not help.
            raise PayerRejection("payer refused our client credentials", operation_outcome([{
                "code": "security", "diagnostics": f"token endpoint answered HTTP {resp.status_code}"}]),
                status=resp.status_code)
        raise_for_http_status(resp, "token request")
        body = json_body(resp, "token request")
        if not body.get("access_token"):
            raise TransientPayerError("token request: no access_token in the answer")
        return str(body["access_token"]), float(body.get("expires_in", 300))

    def _assertion(self) -> str:
        key_data = self.s["private_key"]
        alg = self.s.get("algorithm", "RS384")
        key = import_key(key_data, "EC" if alg.startswith("ES") else "RSA")
        now = int(time.time())
        header = {"alg": alg, "typ": "JWT"}
        kid = self.s.get("key_id") or (key_data.get("kid") if isinstance(key_data, dict) else None)
        if kid:
            header["kid"] = kid
        claims = {"iss": self.s["client_id"], "sub": self.s["client_id"], "aud": self.s["token_url"],
                  "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        return jwt.encode(header, claims, key, algorithms=[alg])
