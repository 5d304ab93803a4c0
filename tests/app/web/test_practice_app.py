"""The server side of the practice web app: its SMART client in every practice (registered at
tenant creation and at start-up, idempotently) and the static files under /app/ with their
security headers."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.auth import admin, practice_app
from app.auth.models import PUBLIC, T
from app.bootstrap import open_store
from app.settings import Settings
from app.web.routes import STATIC
from tests.conftest import BASE, PUBLIC_URL

CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 50).digest()).decode().rstrip("=")


@pytest.fixture
async def web(app: FastAPI) -> httpx.AsyncClient:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client:
        yield client


def _client_row(engine: sa.Engine, client_id: str) -> sa.Row | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(T["client"]).where(T["client"].c.client_id == client_id)).first()


def test_a_new_practice_gets_the_app_as_a_public_client(app: FastAPI) -> None:
    engine = app.state.services.engine
    slug = "p-" + uuid.uuid4().hex[:10]
    admin.create_tenant(engine, slug, "A practice", public_url=PUBLIC_URL)
    row = _client_row(engine, "app-" + slug)
    assert row is not None and row.tenant_id == slug and row.kind == PUBLIC and row.secret_hash is None
    assert json.loads(row.redirect_uris) == [PUBLIC_URL + "/app/"]
    assert "__admin" not in row.scope and "user/*.cruds" in row.scope


def test_start_up_registers_existing_practices_once_and_keeps_other_urls(app: FastAPI, tenant: str) -> None:
    engine = app.state.services.engine
    assert _client_row(engine, practice_app.client_id_for(tenant)) is None  # made before the app existed
    practice_app.ensure_all(engine, PUBLIC_URL)
    practice_app.ensure_all(engine, PUBLIC_URL)
    practice_app.ensure_all(engine, "https://billing.example.org/")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T["client"]).where(T["client"].c.tenant_id == tenant)).all()
    assert len(rows) == 1
    assert json.loads(rows[0].redirect_uris) == [PUBLIC_URL + "/app/", "https://billing.example.org/app/"]


def test_open_store_registers_the_app_for_every_tenant(settings: Settings, tenant: str) -> None:
    store = open_store(settings.model_copy(update={"public_url": "http://127.0.0.1:8123"}))
    row = _client_row(store.engine, practice_app.client_id_for(tenant))
    store.engine.dispose()
    assert row is not None and "http://127.0.0.1:8123/app/" in json.loads(row.redirect_uris)


def test_a_long_slug_gets_a_hashed_client_id() -> None:
    slug = "a" * 63
    client_id = practice_app.client_id_for(slug)
    assert len(client_id) == 64 and client_id == "app-" + hashlib.sha256(slug.encode()).hexdigest()[:60]
    assert practice_app.client_id_for("demo") == "app-demo"
    js = (STATIC / "js" / "smart.js").read_text()  # the app derives the same id
    assert "'app-' + practice" in js and "hex.slice(0, 60)" in js


async def test_the_login_page_takes_the_apps_authorization_request(app: FastAPI, web: httpx.AsyncClient) -> None:
    slug = "p-" + uuid.uuid4().hex[:10]
    admin.create_tenant(app.state.services.engine, slug, public_url=PUBLIC_URL)
    params = {"response_type": "code", "client_id": "app-" + slug, "redirect_uri": PUBLIC_URL + "/app/",
              "scope": "openid fhirUser user/*.cruds", "state": "s1", "aud": BASE,
              "code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    page = await web.get("/auth/authorize", params=params)
    assert page.status_code == 200 and 'name="password"' in page.text and practice_app.CLIENT_NAME in page.text
    elsewhere = await web.get("/auth/authorize", params={**params, "redirect_uri": "https://evil.example/app/"})
    assert elsewhere.status_code != 302 and "redirect_uri" in elsewhere.text  # never sent anywhere else


async def test_the_page_and_its_security_headers(web: httpx.AsyncClient) -> None:
    assert (await web.get("/app")).headers["location"] == "/app/"
    page = await web.get("/app/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    import_map = re.search(r'<script type="importmap">(.*?)</script>', page.text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["referrer-policy"] == "no-referrer"
    script = await web.get("/app/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/app/../README.md", "/app/%2e%2e/%2e%2e/README.md", "/app/js/nothing.js",
                                  "/app/index.html", "/app/js"])
async def test_nothing_outside_the_apps_files(web: httpx.AsyncClient, path: str) -> None:
    answer = await web.get(path)
    assert answer.status_code == 404 and answer.json()["resourceType"] == "OperationOutcome"


def test_every_vendored_library_is_pinned_with_its_licence() -> None:
    folders = sorted((STATIC / "vendor").iterdir())
    assert [f.name for f in folders] == ["chart.js-4.5.1", "htm-3.1.1", "preact-10.27.2"]
    for folder in folders:
        assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), folder
    page = (STATIC / "index.html").read_text()
    for name in re.findall(r'"\./vendor/([^"]+)"|src="vendor/([^"]+)"', page):
        assert (STATIC / "vendor" / (name[0] or name[1])).is_file()


def test_the_app_calls_only_the_fhir_api_and_the_authorization_server() -> None:
    """No private endpoint: every URL the scripts build starts at the FHIR base or comes from
    the SMART configuration."""
    scripts = "\n".join(p.read_text() for p in Path(STATIC / "js").glob("*.js"))
    assert "/admin" not in scripts and "/auth/" not in scripts
    assert sorted(re.findall(r"fetch\((.+?),", scripts)) == [
        "fhirBase() + '/.well-known/smart-configuration'", "pending.tokenEndpoint", "session.revocationEndpoint",
        "session.tokenEndpoint", "url"]
    assert "const url = /^https?:/.test(path) ? path : fhirBase() + '/' + path;" in scripts


def test_an_earlier_registration_gets_the_current_scope(app: FastAPI, tenant: str) -> None:
    """Registrations from before the app asked for ``online_access`` (practice switching) are brought up to date."""
    engine = app.state.services.engine
    client_id = practice_app.ensure_client(engine, tenant, PUBLIC_URL)
    with engine.begin() as conn:
        conn.execute(sa.update(T["client"]).where(T["client"].c.client_id == client_id)
                     .values(scope="openid fhirUser profile user/*.cruds"))
    practice_app.ensure_all(engine, PUBLIC_URL)
    row = _client_row(engine, client_id)
    assert row.scope == practice_app.SCOPE and "online_access" in row.scope
    assert json.loads(row.redirect_uris) == [PUBLIC_URL + "/app/"]
