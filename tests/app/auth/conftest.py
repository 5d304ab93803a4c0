"""Fixtures for the authorization-server tests: a fresh database per test module (SQLite, or
PostgreSQL when ``THERABRIDGE_TEST_DATABASE_URL`` is set: a throw-away database is created
and dropped), a small app made of the auth routers plus one protected route, and builders for
tenants, clients, users and client assertions."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc import jwk, jwt

from app import migrations
from app.auth import admin, bearer
from app.auth.admin_routes import router as admin_router
from app.auth.oauth_routes import discovery_router, router as oauth_router
from app.db import make_engine
from app.fhir.errors import FhirError
from app.settings import Settings

BASE = "http://testserver"
TOKEN_URL = BASE + "/auth/token"
FHIR = BASE + "/fhir"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = os.environ.get("THERABRIDGE_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path_factory.mktemp('authdb') / 'auth.db'}"
        return
    name = "auth_" + uuid.uuid4().hex[:12]
    admin_engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield str(sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False))
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_engine.dispose()


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    migrations.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, public_url=BASE)


def build_app(engine: sa.Engine, settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.engine = engine
    app.state.settings = settings
    app.include_router(discovery_router)

    @app.get("/fhir/{rtype}/{rid}")
    async def read(rtype: str, rid: str, request: Request) -> JSONResponse:
        ctx = bearer.authenticate(request, engine, settings)
        if not ctx.scopes.allows("r", rtype):
            raise bearer.insufficient_scope(f"No scope allows reading {rtype}.")
        return JSONResponse({"tenant": ctx.tenant_id, "client_id": ctx.client_id, "user": ctx.user,
                             "patient": ctx.patient, "fhirUser": ctx.fhir_user, "type": rtype, "id": rid})

    app.include_router(oauth_router)
    app.include_router(admin_router)

    @app.exception_handler(FhirError)
    async def fhir_error(_: Request, exc: FhirError) -> JSONResponse:
        return JSONResponse(exc.outcome, status_code=exc.status, headers=exc.headers)

    return app


@pytest.fixture(scope="module")
def app(engine: sa.Engine, settings: Settings) -> FastAPI:
    return build_app(engine, settings)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def tenant(engine: sa.Engine) -> str:
    return admin.create_tenant(engine, unique("t"))["id"]


@dataclass
class Backend:
    client_id: str
    key: jwk.Key
    alg: str
    tenant: str


def new_key(alg: str, kid: str | None = None) -> jwk.Key:
    kid = kid or secrets.token_hex(6)
    if alg.startswith("RS"):
        return jwk.RSAKey.generate_key(2048, parameters={"kid": kid})
    return jwk.ECKey.generate_key({"ES256": "P-256", "ES384": "P-384"}[alg], parameters={"kid": kid})


def public_jwks(*keys: jwk.Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def make_backend(engine: sa.Engine, tenant: str, *, alg: str = "ES384",
                 scope: str = "system/*.cruds", **kwargs: Any) -> Backend:
    key = new_key(alg)
    if "jwks_uri" in kwargs:
        created = admin.register_client(engine, tenant=tenant, name="EHR", scope=scope, kind="jwks_uri", **kwargs)
    else:
        created = admin.register_client(engine, tenant=tenant, name="EHR", scope=scope, kind="jwks",
                                        jwks=public_jwks(key), **kwargs)
    return Backend(created["client_id"], key, alg, tenant)


def assertion(client_id: str, key: jwk.Key, alg: str, *, header: dict[str, Any] | None = None,
              **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 300,
            "iat": now, "jti": uuid.uuid4().hex}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, body, key, algorithms=[head["alg"]])


def backend_form(client_assertion: str, scope: str = "system/*.rs") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def b64url_json(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(p: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    head, payload, _ = token.split(".")
    return part(head), part(payload)


def add_patient(engine: sa.Engine, tenant: str, pid: str, family: str = "Doe") -> None:
    """A Patient row in the resource store, for the consent page's patient picker."""
    from app.db import ResourceRow
    from app.auth.crypto import utcnow

    content = json.dumps({"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": ["Pat"]}]})
    with engine.begin() as conn:
        conn.execute(sa.insert(ResourceRow.__table__).values(  # type: ignore[attr-defined]
            tenant_id=tenant, type="Patient", id=pid, version_id=1, last_updated=utcnow(),
            deleted=False, content=content))


ROOT = Path(__file__).resolve().parents[3]
