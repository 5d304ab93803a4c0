"""Client lookup and client authentication at the token endpoint (RFC 6749 §2.3, SAL-ASYM,
SAL-SYM).

Exactly one method per request, picked by what the request carries:

- ``client_assertion`` ⇒ ``private_key_jwt`` (``app.auth.assertions``);
- ``Authorization: Basic`` ⇒ ``client_secret_basic`` (failure: 401 with ``WWW-Authenticate``);
- ``client_id`` alone ⇒ a public client (PKCE is what protects its codes).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from sqlalchemy.engine import Engine

from app.auth import assertions
from app.auth.crypto import digest, same
from app.auth.models import PUBLIC, SECRET, T
from app.settings import Settings


def get_client(engine: Engine, client_id: str | None) -> Any:
    """The client row for ``client_id`` or None."""
    if not client_id or len(client_id) > 64:
        return None
    with engine.connect() as conn:
        return conn.execute(sa.select(T["client"]).where(T["client"].c.client_id == client_id)).first()


def redirect_uris(client: Any) -> list[str]:
    return list(json.loads(client.redirect_uris or "[]"))


def basic_auth_failed(description: str) -> InvalidClientError:
    """``invalid_client`` after a failed Basic login: 401 + ``WWW-Authenticate`` (RFC 6749 §5.2)."""
    return InvalidClientError(description=description, status_code=401)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise basic_auth_failed("Malformed Basic credentials.") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise basic_auth_failed("Malformed Basic credentials.")
    return unquote(user), unquote(password)


def authenticate_client(engine: Engine, settings: Settings, form: dict[str, str],
                        authorization: str | None, audiences: list[str]) -> Any:
    """The authenticated client of a token/introspection/revocation request. ``audiences``:
    the endpoint URLs a client assertion may name as ``aud`` (the token URL first)."""
    if "client_assertion" in form or "client_assertion_type" in form:
        client = assertions.authenticate_assertion(
            engine, settings, audiences, form, lambda cid: get_client(engine, cid))
        if form.get("client_id") and form["client_id"] != client.client_id:
            raise InvalidClientError(description="client_id does not match the assertion.")
        return client
    if authorization:
        creds = _basic_credentials(authorization)
        if creds is not None:
            client_id, secret = creds
            client = get_client(engine, client_id)
            expected = client.secret_hash if client is not None and client.kind == SECRET else None
            # Compare against a dummy digest for unknown clients so timing reveals nothing.
            ok = same(digest(secret), expected or "0" * 64) and expected is not None
            if not ok:
                raise basic_auth_failed("Client authentication failed.")
            if form.get("client_id") and form["client_id"] != client_id:
                raise InvalidClientError(description="client_id does not match the credentials.")
            return client
    if "client_secret" in form:
        raise InvalidClientError(description="Use HTTP Basic for the client secret (client_secret_basic).")
    client_id = form.get("client_id")
    if not client_id:
        raise InvalidClientError(description="Client authentication is required.")
    client = get_client(engine, client_id)
    if client is None:
        raise InvalidClientError(description="Unknown client.")
    if client.kind != PUBLIC:
        raise InvalidClientError(description="This client must authenticate.")
    return client


def claimed_client(engine: Engine, form: dict[str, str], authorization: str | None) -> Any:
    """The client a failed request claimed to be (unverified), so the failure can be audited
    under that client's tenant; None when it names no registered client."""
    claimed = form.get("client_id")
    if not claimed and form.get("client_assertion"):
        try:
            payload = form["client_assertion"].split(".")[1]
            claimed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("sub")
        except (IndexError, ValueError, AttributeError):
            claimed = None
    if not claimed and authorization:
        try:
            creds = _basic_credentials(authorization)
        except InvalidClientError:
            creds = None
        claimed = creds[0] if creds else None
    return get_client(engine, claimed) if isinstance(claimed, str) else None


def require_form_value(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise InvalidRequestError(description=f"Missing parameter: {name}.")
    return value
