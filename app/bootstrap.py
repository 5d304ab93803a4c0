"""Start-up chores shared by ``serve`` and ``load``: migrate, ensure the default tenant, demo data."""
from __future__ import annotations

from pathlib import Path

import orjson

from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
from app.migrations import upgrade
from app.settings import Settings

DEMO_BUNDLE = Path(__file__).resolve().parent / "demo_data" / "practice.json"


def open_store(settings: Settings) -> Store:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    store = Store(engine, registry(), base_url=settings.fhir_base)
    store.ensure_tenant(settings.default_tenant)
    return store


def load_demo(store: Store, tenant: str) -> int:
    """Load the demo practice (idempotent: every entry is a PUT with a fixed id)."""
    from app.fhir.transactions import BundleProcessor

    bundle = orjson.loads(DEMO_BUNDLE.read_bytes())
    proc = BundleProcessor(store.for_tenant(tenant), store.registry, store.base_url, lambda i, t: None,
                           lambda unit, e: (405, None), "minimal")
    return len(proc.transaction(bundle)["entry"])


def prepare_database(settings: Settings, *, demo: bool) -> list[str]:
    store = open_store(settings)
    lines = [f"database ready: {settings.database_url.split('@')[-1]}"]
    if demo:
        n = load_demo(store, settings.default_tenant)
        lines.append(f"demo practice loaded ({n} resources) into tenant '{settings.default_tenant}'")
    lines.append(f"FHIR API: {settings.fhir_base}  (CapabilityStatement: {settings.fhir_base}/metadata)")
    store.engine.dispose()
    return lines
