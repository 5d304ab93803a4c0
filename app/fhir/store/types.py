"""The store's value types and the contracts of what plugs into it (observers, guards).

Kept apart from the classes that read and write, so every part of the store (and what plugs into
it) names them without importing the rest.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import orjson

from app.fhir import exact_json
from app.fhir.access import EVERYTHING, Access
from app.fhir.dates import UTC, instant
from app.outbox import QueuedJob

if TYPE_CHECKING:
    from app.fhir.store.unit import Unit


Clock = Callable[[], datetime]
AccessOf = Callable[[str, str], Access]  # (interaction c/r/u/d/s, resource type) -> Access
# [(create | update | delete, version)] -> the audit rows (app.audit's row dicts) of those writes
AuditRows = Callable[[list[tuple[str, "Version"]]], list[dict[str, Any]]]
# A write observer: the jobs a create, update or delete queues, from the new version (deleted,
# without content, for a delete) and the one it replaces (None for a create). Called before the write; its jobs are written with it, in its
# transaction, and only if it happens. ``unit`` is None on the API's one-statement create
# (``TenantStore.acreate``): an observer that must read first raises NeedsTransaction there.
Observer = Callable[["Unit | None", "Version", "Version | None"], list[QueuedJob]]


# A client-write guard: what a client's write of one resource type stores. Called with the unit,
# the client's resource (None for a delete) and the current version (None when there is none);
# returns the resource to store (server-owned elements kept from the current version) or raises
# FhirError. Only the FHIR interactions of clients run guards; the server's own writes do not.
Guard = Callable[["Unit", "dict[str, Any] | None", "Version | None"], "dict[str, Any] | None"]


# A computed-index plug-in: number search values the server derives from a resource of one type
# (an EOB's settled amount), as [(parameter, value)]; added to the rows the registry's paths give.
Indexer = Callable[["dict[str, Any]"], "list[tuple[str, Decimal]]"]


class NeedsTransaction(Exception):
    """An observer must read inside the writing transaction; the write takes the ``Unit`` path."""


T = TypeVar("T")


def everything(interaction: str, rtype: str) -> Access:
    return EVERYTHING


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Version:
    """One stored version; ``content`` is the serialized JSON served to clients as is."""

    type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    def resource(self) -> dict[str, Any]:
        """The content parsed afresh: the caller's own to change."""
        return orjson.loads(self.content) if self.content else {}

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """The content parsed once and shared by everything that only reads this version while
        it is written (the index, the observers, the derived rows, the audit row): parsing a
        claim's content was a sixth of the CPU of posting a payer's answer, each version parsed
        four to six times. Never change it; ``resource()`` gives a copy to change."""
        return self.resource()


@dataclass(frozen=True)
class WriteResult:
    version: Version
    created: bool
    status: int  # 201 created, 200 updated or matched an existing resource (conditional create)


@dataclass
class SearchResult:
    matches: list[Version]
    included: list[Version] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


def serialize(resource: dict[str, Any], rid: str, version_id: int, when: datetime) -> str:
    """Stamp id and meta (server-owned, R4 http.html §3.1.0.4) and serialize, resourceType first."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    doc: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": rid,
        "meta": {"versionId": str(version_id), "lastUpdated": instant(when), **meta},
    }
    for key, value in resource.items():
        if key not in doc:
            doc[key] = value
    return orjson.dumps(doc, default=exact_json.default).decode()  # decimals as sent


def in_key_order(text: str) -> str:
    """Rows written while the column was JSONB come back in its key order; put resourceType,
    id and meta back in front (the ``json`` column keeps the text as written)."""
    if text.startswith('{"resourceType":'):
        return text
    doc = orjson.loads(text)
    head = {k: doc.pop(k) for k in ("resourceType", "id", "meta") if k in doc}
    return orjson.dumps({**head, **doc}).decode()


def lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
