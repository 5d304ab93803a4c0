"""The process-wide objects a request needs, built once by :func:`app.main.create_app`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

import orjson
from fastapi import Request
from sqlalchemy.engine import Engine

from app.fhir.capability import capability_statement
from app.fhir.dates import instant
from app.fhir.operations import operation_summaries
from app.fhir.registry import Registry
from app.fhir.store import Store
from app.audit import AuditLog
from app.security import AccessContext
from app.settings import Settings

Authenticator = Callable[[Request], Awaitable[AccessContext]]


@dataclass
class Services:
    settings: Settings
    engine: Engine
    registry: Registry
    store: Store
    authenticate: Authenticator
    audit: AuditLog | None = None
    security: dict | None = None
    _capability: bytes | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return self.settings.fhir_base

    def capability_bytes(self) -> bytes:
        if self._capability is None:
            doc = capability_statement(self.registry, base=self.base, date=instant(self.store.clock())[:10],
                                       operations=operation_summaries(self.base), security=self.security)
            self._capability = orjson.dumps(doc)
        return self._capability
