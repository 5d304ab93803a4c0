"""Which adapter serves which kind of payer connection: one table, read top to bottom.

A connection stored by the server names its ``kind`` and carries its settings (keys per kind:
ADAPTERS.md). :data:`BUILT_IN` says, for each kind, how to build its adapter and what it can do;
both are known from the settings alone, so the core can size its claim batches (their members
and idempotency keys are fixed before anything is sent) without building an adapter.

This module imports the adapters; the adapters and the contract never import it.
:func:`register_adapter` adds a kind at run time (tests use it for fakes); a kind registered
again replaces the earlier one.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import httpx

from payer_adapters import clearinghouse_json, fhir_payer, x12_files
from payer_adapters.contract import Capabilities, PayerAdapter
from payer_adapters.x12.control import ControlNumbers

Settings = dict[str, Any]
#: ``factory(settings, *, http, control_numbers)`` → the adapter; ValueError for unusable settings.
AdapterFactory = Callable[..., PayerAdapter]
BatchSize = Callable[[Settings], int]


@dataclass(frozen=True)
class AdapterKind:
    """One row of the table: how to build the adapter and what it can do for given settings."""

    factory: AdapterFactory
    capabilities: Callable[[Settings], Capabilities]

    def batch_size(self, settings: Settings) -> int:
        """Claims per ``submit_claims`` call (at least one)."""
        return max(1, self.capabilities(settings).batch_size)


BUILT_IN: Mapping[str, AdapterKind] = MappingProxyType({
    "x12-directory": AdapterKind(x12_files.directory_factory, x12_files.capabilities),
    "x12-sftp": AdapterKind(x12_files.sftp_factory, x12_files.capabilities),
    "fhir-payer": AdapterKind(fhir_payer.factory, fhir_payer.capabilities),
    "clearinghouse-json": AdapterKind(clearinghouse_json.factory, clearinghouse_json.capabilities),
})

_kinds: dict[str, AdapterKind] = dict(BUILT_IN)


def register_adapter(kind: str, factory: AdapterFactory, *, batch_size: BatchSize | None = None) -> None:
    """Make ``kind`` available to :func:`create_adapter` (replacing an earlier registration).

    ``batch_size(settings)`` says how many claims one ``submit_claims`` call may carry (default
    one); a kind registered this way answers eligibility in a batch and offers no ``$inquire``
    as far as :func:`capabilities` can tell: the adapter built says for itself."""

    def declared(settings: Settings) -> Capabilities:
        size = batch_size(settings) if batch_size else 1
        return Capabilities(realtime_eligibility=False, batch_claims=batch_size is not None, batch_size=size)

    _kinds[kind] = AdapterKind(factory, declared)


def adapter_kinds() -> list[str]:
    return sorted(_kinds)


def _kind(kind: str) -> AdapterKind:
    try:
        return _kinds[kind]
    except KeyError:
        raise KeyError(f"unknown payer adapter kind {kind!r}; known: {', '.join(sorted(_kinds))}") from None


def capabilities(kind: str, settings: Settings) -> Capabilities:
    """What a connection of ``kind`` with these settings can do, without building its adapter."""
    return _kind(kind).capabilities(settings)


def claim_batch_size(kind: str, settings: Settings) -> int:
    """Claims per ``submit_claims`` for a connection, known before any adapter is built: the
    core fixes each batch (its members and key) before sending it. An unknown kind sends one."""
    row = _kinds.get(kind)
    return row.batch_size(settings) if row is not None else 1


def create_adapter(kind: str, settings: Settings, *, http: httpx.AsyncClient,
                   control_numbers: ControlNumbers) -> PayerAdapter:
    """Build the adapter for a payer from its stored settings.

    ``http`` is the server's shared client (tests pass one over ``ASGITransport(app=sandbox)``);
    adapters never build their own. ``control_numbers`` is the durable X12 sequence.
    Raises KeyError for an unknown kind and ValueError for unusable settings."""
    return _kind(kind).factory(settings, http=http, control_numbers=control_numbers)
