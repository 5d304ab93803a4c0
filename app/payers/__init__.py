"""Payers (issue 6): the per-tenant payer directory, claim submission through the outbox,
eligibility, and collection and posting of payer answers (999, 277CA, 835, 271).

Entry points: :func:`install` (job handlers and the auto-submit observer, called from
``app.bootstrap.build_store``), ``app.payers.routes.router`` (FHIR operations),
``app.payers.admin_routes.router`` (``/admin/payers``) and ``app.cli.payers``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.fhir.store import Store
    from app.settings import Settings


def install(store: "Store", settings: "Settings") -> None:
    """Register the payer job handlers and the auto-submit observer on ``store``."""
    from app.payers.runtime import install as _install

    _install(store, settings)
