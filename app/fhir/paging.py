"""Page links (``_page``) the server issues and takes back: signed, and bound to who and what.

A token is the position where the next page starts (the sort value and row number of the row
to continue after, and the direction) as compact JSON, followed by an HMAC-SHA256 over that
position, the tenant and the query being paged (its *binding*). So a client cannot forge a
position (a changed byte breaks the MAC; no crafted number ever reaches SQL), nor replay the link
of one tenant or one query on another: each is refused with a 400 OperationOutcome.

The binding of a search is its resource type and the parameters the server applied (sorted, so
their order does not matter; ``_count`` is left out: changing the page size while paging is
harmless); of a history, its type, id and ``_since``. The key is the server's
(:func:`app.auth.keys.mac_key`), kept in the database so every server process accepts the links of
every other.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Callable
from urllib.parse import urlencode

import orjson
from sqlalchemy.engine import Engine

from app.fhir.errors import FhirError
from app.fhir.search_params import SearchQuery

MAX_TOKEN = 1024  # far above any token we issue; longer ones are refused before decoding
MAX_ROW = 2**63 - 1  # row numbers are BIGINT
KEY_NAME = "page-links"


@dataclass(frozen=True)
class Position:
    """Where a page starts: after (``value``, ``pk``) in the query's order (``value`` is None when
    the order is by row number alone), walking forwards (``n``) or backwards (``p``)."""

    value: str | None
    pk: int
    direction: str = "n"


def ensure_key(engine: Engine) -> None:
    """Create the key if the database has none (run with the migrations, so that the first link is
    never issued while a SQLite write transaction holds the lock creating the key would need, as
    in a search inside a transaction Bundle)."""
    from app.auth.keys import mac_key

    mac_key(engine, KEY_NAME)


def search_binding(query: SearchQuery) -> str:
    return f"search {query.resource_type}?{urlencode(sorted(query.applied))}"


def history_binding(rtype: str | None, rid: str | None, since: datetime | None) -> str:
    return f"history {rtype or '*'}/{rid or '*'} since={since.isoformat() if since else ''}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and checks page tokens with the key ``key()`` returns (fetched on first use)."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key_source = key
        self._key: bytes | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> "PageTokens":
        from app.auth.keys import mac_key

        return cls(partial(mac_key, engine, KEY_NAME))

    def _mac(self, tenant: str, binding: str, payload: bytes) -> bytes:
        if self._key is None:
            self._key = self._key_source()
        message = b"\x1f".join((tenant.encode(), binding.encode(), payload))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def issue(self, tenant: str, binding: str, position: Position) -> str:
        payload = orjson.dumps([position.value, position.pk, position.direction])
        return f"{_b64(payload)}.{_b64(self._mac(tenant, binding, payload))}"

    def read(self, token: str, tenant: str, binding: str) -> Position:
        """The position in ``token``; 400 unless this server issued it for this tenant and query."""
        try:
            if len(token) > MAX_TOKEN:
                raise ValueError("too long")
            body, _, tag = token.partition(".")
            payload, mac = _unb64(body), _unb64(tag)
            if not hmac.compare_digest(mac, self._mac(tenant, binding, payload)):
                raise ValueError("not ours")
            value, pk, direction = orjson.loads(payload)
            if (not isinstance(value, (str, type(None))) or type(pk) is not int or not 0 <= pk <= MAX_ROW
                    or direction not in ("n", "p")):
                raise ValueError("not a position")
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise FhirError(400, "invalid", "The _page value is not a page link this server issued for this "
                            "search; follow the links of the Bundle (a link works only for its own query)",
                            expression=["_page"]) from None
        return Position(value, pk, direction)
