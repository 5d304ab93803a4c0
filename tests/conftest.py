"""Shared fixtures: one database per run (SQLite file, or THERABRIDGE_TEST_DATABASE_URL), one
app, and a fresh tenant per test so tests never see each other's data."""
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
from app.main import create_app
from app.migrations import upgrade
from app.security import AccessContext
from app.settings import Settings

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
    test has its own tenant; the token flows themselves are tested in tests/auth."""
    scope = request.headers.get("x-test-scope")
    if scope is None:
        return AccessContext(tenant_id=request.headers.get("x-test-tenant", "default"), scopes=AllowAll())
    from app.auth.scopes import ScopeSet

    return AccessContext(tenant_id=request.headers.get("x-test-tenant", "default"), scopes=ScopeSet.parse(scope),
                         patient=request.headers.get("x-test-patient"), client_id=request.headers.get("x-test-client"),
                         source_address=request.client.host if request.client else None)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings, authenticate=tenant_from_header)


@pytest.fixture
def tenant(app: FastAPI) -> str:
    tid = "t-" + uuid.uuid4().hex[:12]
    app.state.services.store.ensure_tenant(tid)
    return tid


@pytest.fixture
async def api(app: FastAPI, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL,
                                 headers={"x-test-tenant": tenant}) as client:
        yield client


@pytest.fixture
def store(app: FastAPI, tenant: str):  # type: ignore[no-untyped-def]
    return app.state.services.store.for_tenant(tenant)


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
