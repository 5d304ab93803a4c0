"""Start-up chores shared by ``serve`` and ``load``: migrate, ensure the default tenant, demo data."""
from __future__ import annotations

import sys
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
from app.migrations import upgrade
from app.settings import Settings

DEMO_BUNDLE = Path(__file__).resolve().parent / "demo_data" / "practice.json"


def build_store(settings: Settings, engine: Engine) -> Store:
    """The store with its write observers (claim automation) — every entry point uses this."""
    from app import payers
    from app.claims import automation, client_writes

    store = Store(engine, registry(), base_url=settings.fhir_base)
    store.guards["Claim"] = client_writes.guard
    automation.install(store)
    payers.install(store, settings)
    return store


def open_store(settings: Settings) -> Store:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    store = build_store(settings, engine)
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
    """Migrate; with ``demo``, create the demo tenant, its credentials and practice. Returns what to print."""
    store = open_store(settings)
    lines = [f"database ready: {settings.database_url.split('@')[-1]}",
             f"FHIR API: {settings.fhir_base}  (CapabilityStatement: {settings.fhir_base}/metadata)"]
    if demo:
        from app.auth.demo import ensure_demo_credentials

        creds = ensure_demo_credentials(store.engine, settings, Path(settings.var_dir))
        store.ensure_tenant(creds["tenant"])
        n = load_demo(store, creds["tenant"])
        token = f"{sys.executable} -m app.auth.get_token {creds['key_file']}"
        lines += [
            f"demo practice loaded ({n} resources) into tenant '{creds['tenant']}'",
            f"backend client {creds['client_id']}: private key in {creds['key_file']}",
            f"demo user '{creds['user']}' (role biller): password in {creds['user_file']}",
            "get a token and call the API:",
            f'  TOKEN=$({token})',
            f'  curl -H "Authorization: Bearer $TOKEN" "{settings.fhir_base}/Encounter?patient=pat-alvarez"',
            f"SMART configuration: {creds['smart_configuration']}",
        ]
    lines += store.analyze(never_analyzed_only=not demo)
    store.engine.dispose()
    return lines
