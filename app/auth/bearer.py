"""Bearer-token authentication for the FHIR API (SAL-LAUNCH step 6; RFC 6750 §3).

:func:`authenticate` turns the request's ``Authorization: Bearer`` header into an
:class:`app.security.AccessContext` or raises a 401 :class:`FhirError` carrying
``WWW-Authenticate``. It runs on every FHIR request, so it reads no database on the common
path: signatures are verified once per token and cached until expiry, and revocations are
polled (``app.auth.tokens``).
"""
from __future__ import annotations

from typing import Awaitable, Callable

from sqlalchemy.engine import Engine
from starlette.requests import HTTPConnection, Request

from app.auth.scopes import ScopeSet
from app.auth.tokens import InvalidToken, verify_access_token
from app.fhir.errors import FhirError
from app.security import AccessContext
from app.settings import Settings

REALM = "therabridge"
CONTEXT_CACHE_SIZE = 10_000
# token -> the AccessContext built for it last (valid only while the token verifies, which
# ``verify_access_token`` re-checks on every call: expiry and revocation).
_contexts: dict[str, AccessContext] = {}


def authenticate(request: HTTPConnection, engine: Engine, settings: Settings) -> AccessContext:
    """The caller's access context; 401 (``login``) for a missing, malformed, expired, revoked
    or foreign token. Scope checks (403) are the caller's, via ``context.scopes``."""
    header = request.headers.get("authorization")
    if not header:
        raise FhirError(401, "login", "Authentication required: send an OAuth 2.0 bearer token.",
                        headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _invalid("Authorization must use the Bearer scheme.")
    try:
        claims = verify_access_token(engine, settings, token)
    except InvalidToken as exc:
        raise _invalid(f"The access token is invalid: {exc}.") from None
    host = request.client.host if request.client else None
    cached = _contexts.get(token)
    if cached is not None and cached.source_address == host:
        return cached
    client_id = claims["client_id"]
    sub = claims.get("sub")
    ctx = AccessContext(
        tenant_id=claims["tenant"],
        scopes=ScopeSet.parse(claims["scope"]),
        client_id=client_id,
        user=sub if sub != client_id else None,
        fhir_user=claims.get("fhirUser"),
        patient=claims.get("patient"),
        encounter=claims.get("encounter"),
        source_address=host,
    )
    if len(_contexts) >= CONTEXT_CACHE_SIZE:
        _contexts.clear()
    _contexts[token] = ctx
    return ctx


def authenticator(engine: Engine, settings: Settings) -> Callable[[Request], Awaitable[AccessContext]]:
    """``authenticate`` bound to an engine, in the async shape ``app.main.create_app`` takes."""

    async def _authenticate(request: Request) -> AccessContext:
        return authenticate(request, engine, settings)

    return _authenticate


def insufficient_scope(diagnostics: str, required: str | None = None) -> FhirError:
    """The 403 for a valid token without the needed scope (RFC 6750 §3.1)."""
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope"'
    if required:
        challenge += f', scope="{required}"'
    return FhirError(403, "forbidden", diagnostics, headers={"WWW-Authenticate": challenge})


def _invalid(description: str) -> FhirError:
    return FhirError(401, "login", description, headers={
        "WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                            f'error_description="{description.replace(chr(34), chr(39))}"'})
