"""Who is calling: the access context every FHIR interaction is checked against.

The FHIR routes depend only on :class:`AccessContext`; how it is obtained (a SMART bearer
token) lives in ``app.auth``. The store takes the tenant from it, so no route can forget it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class ScopePolicy(Protocol):
    """What a token's scopes allow. ``interaction`` is one of SMART v2's c, r, u, d, s."""

    def allows(self, interaction: str, resource_type: str) -> bool: ...

    def restrictions(self, resource_type: str, interaction: str) -> list[dict[str, str]] | None:
        """Granular ``?param=value`` filters: None = unrestricted, else match all pairs of one dict."""
        ...

    def patient_scoped(self, interaction: str, resource_type: str) -> bool:
        """True when only ``patient/`` scopes grant this, so access is confined to ``patient``."""
        ...


@dataclass(frozen=True)
class AccessContext:
    tenant_id: str
    scopes: ScopePolicy
    client_id: str | None = None
    user: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    encounter: str | None = None
    source_address: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
