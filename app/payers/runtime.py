"""Process-wide wiring of the payer side: settings, the HTTP client factory, and running an
async adapter call from a synchronous job handler (calls themselves go through ``calls``)."""
from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Awaitable, Callable, TypeVar

import httpx
import sqlalchemy as sa

from app.directory.secrets import CredentialKeyError
from app.directory.tables import CONNECTIONS
from app.fhir.store import Store
from app.settings import Settings

R = TypeVar("R")


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~20 ms, per client."""
    return ssl.create_default_context()


def default_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30.0, verify=_tls())


@dataclass
class Runtime:
    settings: Settings
    #: Builds the AsyncClient an adapter uses for one job; tests route it to the sandbox app.
    http_factory: Callable[[], httpx.AsyncClient] = field(default=default_http)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process's payer runtime, which ``app.bootstrap`` configures from the settings the
    entry point read (the payer side reaches its settings here, and only here)."""
    if _runtime is None:
        raise RuntimeError("the payer runtime is not configured: build the store with app.bootstrap.build_store")
    return _runtime


def configure(settings: Settings, http_factory: Callable[[], httpx.AsyncClient] | None = None) -> Runtime:
    """Make ``settings`` (and ``http_factory``, default: a verifying client) the process's payer
    runtime; returns it."""
    return use(Runtime(settings) if http_factory is None else Runtime(settings, http_factory))


def use(rt: Runtime | None) -> Runtime | None:
    """Make ``rt`` the payer runtime (tests route payer calls elsewhere, then put it back)."""
    global _runtime
    _runtime = rt
    return rt


def current() -> Runtime | None:
    """The payer runtime, or None before ``app.bootstrap`` configured one."""
    return _runtime


def run_async(fn: Callable[[], Awaitable[R]]) -> R:
    """Run a coroutine from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn())  # type: ignore[arg-type]
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="therabridge-payer-call")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def refuse_without_key(store: Store, settings: Settings) -> None:
    """PostgreSQL (production) with stored payer credentials but no configured key: refuse to
    start rather than fail at the first submission (or tempt someone into a key on local disk)."""
    if not store.postgres or settings.key_encryption_key:
        return
    try:
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(CONNECTIONS.c.pk).where(CONNECTIONS.c.credentials.is_not(None))
                                  .limit(1)).first()
    except sa.exc.DBAPIError:
        return  # schema not migrated yet: nothing stored
    if stored is not None:
        raise CredentialKeyError("payer credentials are stored but THERABRIDGE_KEY_ENCRYPTION_KEY is not set; "
                                 "refusing to start on PostgreSQL")
