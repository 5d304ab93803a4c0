"""Shared fixtures: one database per run (SQLite file, or THERABRIDGE_TEST_DATABASE_URL), one
app, a fresh tenant per test so tests never see each other's data, and the sandbox payer
(in process over ASGITransport, or as a real ``therabridge sandbox-payer`` process)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request

from app.db import make_engine
from app.fhir.store import Store, TenantStore
from app.jobs import J
from app.main import create_app
from app.migrations import upgrade
from app.payers import runtime as payer_runtime
from app.security import AccessContext
from app.settings import Settings
from payer_adapters.sandbox import create_sandbox_app, load_config
from tests.flows import NOW, SANDBOX, Ledger, LiveSandbox

# Like a PostgreSQL deployment, the test session has one key for credentials and signing keys at
# rest; in the environment so server and CLI subprocesses started by tests share it.
os.environ.setdefault("THERABRIDGE_KEY_ENCRYPTION_KEY", Fernet.generate_key().decode())

PUBLIC_URL = "http://testserver"
BASE = PUBLIC_URL + "/fhir"


class AllowAll:
    def allows(self, interaction: str, resource_type: str) -> bool:
        return True

    def restrictions(self, resource_type: str, interaction: str) -> None:
        return None

    def patient_scoped(self, interaction: str, resource_type: str) -> bool:
        return False


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("THERABRIDGE_TEST_DATABASE_URL")
    if url:
        reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(make_engine(url))
    return url


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of the session's kind for one test alone: worker processes (or workers with
    their own engines) run every due job they find, and must not find other tests' jobs."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    import psycopg

    name = "tb_own_" + uuid.uuid4().hex[:8]
    admin = database_url.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url=PUBLIC_URL, max_body_bytes=64 * 1024)


async def tenant_from_header(request: Request) -> AccessContext:
    """Test authenticator: tenant (and optionally SMART scopes and patient) from headers, so each
    test has its own tenant; the token flows themselves are tested in tests/app/auth."""
    scope = request.headers.get("x-test-scope")
    if scope is None:
        return AccessContext(tenant_id=request.headers.get("x-test-tenant", "default"), scopes=AllowAll())
    from app.auth.scopes import ScopeSet

    return AccessContext(tenant_id=request.headers.get("x-test-tenant", "default"), scopes=ScopeSet.parse(scope),
                         patient=request.headers.get("x-test-patient"), client_id=request.headers.get("x-test-client"),
                         fhir_user=request.headers.get("x-test-fhir-user"),
                         source_address=request.client.host if request.client else None)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    """The server app. Tests drain every due job in the database and route every payer call to
    their own sandbox, so unfinished jobs left behind by an earlier run (or by a server process
    a test stopped mid-queue) are dropped first: they would reach that sandbox."""
    server = create_app(settings, authenticate=tenant_from_header)
    with server.state.services.store.engine.begin() as conn:
        conn.execute(J.delete().where(J.c.status.in_(("queued", "running"))))
    return server


@pytest.fixture
def tenant(app: FastAPI) -> Iterator[str]:
    """A fresh tenant. Its unfinished jobs are dropped afterwards: the store lives for the
    session, and a collection left scheduled would otherwise run in a later test, against that
    test's sandbox, and take its reports."""
    store = app.state.services.store
    tid = "t-" + uuid.uuid4().hex[:12]
    store.ensure_tenant(tid)
    yield tid
    with store.engine.begin() as conn:
        conn.execute(J.delete().where(J.c.tenant_id == tid, J.c.status.in_(("queued", "running"))))


@pytest.fixture
async def api(app: FastAPI, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL,
                                 headers={"x-test-tenant": tenant}) as client:
        yield client


@pytest.fixture
def store(app: FastAPI) -> Store:
    """The server's store (every tenant)."""
    return app.state.services.store


@pytest.fixture
def tenant_store(store: Store, tenant: str) -> TenantStore:
    """The test tenant's view of the store, with every permission."""
    return store.for_tenant(tenant)


@pytest.fixture
def demo_bundle() -> Iterator[dict]:
    import orjson

    yield orjson.loads(Path(__file__).resolve().parents[1].joinpath("app/demo_data/practice.json").read_bytes())


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Debian's OpenSSH ``sshd`` on loopback serving a fresh SFTP mailbox (one server per test
    module, so each module sees only its own files); skips where openssh-server is missing."""
    from payer_adapters.sandbox.sshd import SSHD, start_sshd

    if not os.path.exists(SSHD):
        pytest.skip("OpenSSH server (/usr/sbin/sshd) is not installed")
    base = tmp_path_factory.mktemp("sftp")
    server = start_sshd(base / "state", base / "mailbox")
    yield server
    server.stop()


# -- the payer side: the sandbox payer, in process or as a process of its own --------------
@pytest.fixture(scope="session")
def payer_settings(settings: Settings) -> Settings:
    assert settings.key_encryption_key, "the session's settings carry the credential key"
    return settings


@pytest.fixture
def sandbox(tmp_path: Path) -> FastAPI:
    return create_sandbox_app(load_config(mailbox=tmp_path / "mailbox", poll_interval=0, pyx12=False),
                              now=lambda: NOW)


@pytest.fixture
def mailbox(tmp_path: Path) -> Path:
    return tmp_path / "mailbox"


@pytest.fixture
def route_to_sandbox(payer_settings: Settings, sandbox: FastAPI) -> Iterator[None]:
    """Adapters in jobs and routes reach the in-process sandbox."""
    previous = payer_runtime.current()
    payer_runtime.configure(payer_settings, lambda: httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url=SANDBOX))
    yield
    payer_runtime.use(previous)


@pytest.fixture
def ledger(sandbox: FastAPI) -> Ledger:
    return lambda: sandbox.state.sandbox.engine.ledger.summary()


@pytest.fixture(scope="module")
def live_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    box = LiveSandbox(tmp_path_factory.mktemp("live-sandbox"))
    yield box
    box.stop()


@pytest.fixture
def route_to_live(payer_settings: Settings) -> Iterator[None]:
    previous = payer_runtime.current()
    payer_runtime.configure(payer_settings, lambda: httpx.AsyncClient(timeout=10.0))
    yield
    payer_runtime.use(previous)
