"""Standalone launch with the SMART Health IT client (``fhirclient``) against a real uvicorn
process running ``app.main.create_app`` with SMART authentication; the test plays the user,
filling the login and consent forms over HTTP."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.patient import Patient

from app.auth import admin
from app.db import make_engine
from app.migrations import upgrade
from tests.app.auth.conftest import ASSERTION_TYPE, PASSWORD, ROOT, assertion, make_backend
from tests.app.auth.launch_helpers import parse_forms

pytestmark = pytest.mark.slow
REDIRECT = "http://127.0.0.1:9/callback"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[tuple[str, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    upgrade(make_engine(db_url))
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": db_url, "THERABRIDGE_PUBLIC_URL": base,
           "THERABRIDGE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.app.auth.live_app:create", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("uvicorn did not start: " + (proc.stdout.read(4000).decode() if proc.stdout else ""))
        yield base, db_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fhirclient_standalone_launch(server: tuple[str, str], tmp_path: Path) -> None:
    base, db_url = server
    engine = make_engine(db_url)
    tenant = admin.create_tenant(engine, "live-" + os.urandom(3).hex())["id"]

    # An EHR (Backend Services) loads a patient through the FHIR API.
    ehr = make_backend(engine, tenant)
    token_url = f"{base}/auth/token"
    signed = assertion(ehr.client_id, ehr.key, "ES384", aud=token_url)
    ehr_token = httpx.post(token_url, data={
        "grant_type": "client_credentials", "scope": "system/Patient.cruds", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed}).json()["access_token"]
    put = httpx.put(f"{base}/fhir/Patient/pat-1", headers={"Authorization": f"Bearer {ehr_token}",
                                                           "Content-Type": "application/fhir+json"},
                    content=json.dumps({"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Rivera"}]}))
    assert put.status_code in (200, 201), put.text
    assert httpx.get(f"{base}/fhir/Patient/pat-1").status_code == 401

    app = admin.register_client(engine, tenant=tenant, name="Notes app", kind="public", redirect_uris=[REDIRECT],
                                scope="launch/patient openid fhirUser offline_access patient/*.rs")
    admin.create_user(engine, tenant=tenant, username="clin", password=PASSWORD, role="clinician",
                      fhir_user="Practitioner/p1")

    smart = smart_client.FHIRClient(settings={
        "app_id": app["client_id"], "api_base": f"{base}/fhir", "redirect_uri": REDIRECT,
        "scope": "launch/patient openid fhirUser offline_access patient/*.rs"})
    authorize_url = smart.authorize_url
    with httpx.Client(base_url=base) as browser:
        login_page = browser.get(authorize_url)
        assert login_page.status_code == 200, login_page.text
        req = parse_forms(login_page.text).inputs["req"]
        consent_page = browser.post("/auth/login", data={"req": req, "username": "clin", "password": PASSWORD})
        assert consent_page.status_code == 200
        form = parse_forms(consent_page.text)
        assert form.selects["patient"] == ["pat-1"]
        done = browser.post("/auth/consent", data={"req": form.inputs["req"], "decision": "approve", "patient": "pat-1"})
    assert done.status_code == 302
    smart.handle_callback(done.headers["location"])
    assert smart.ready and smart.patient_id == "pat-1"
    patient = Patient.read("pat-1", smart.server)
    assert patient.id == "pat-1" and patient.name[0].family == "Rivera"
    assert smart.server.auth.refresh_token
    smart.reauthorize()
    assert smart.ready and Patient.read("pat-1", smart.server).id == "pat-1"
    engine.dispose()


def test_demo_credentials_and_get_token(server: tuple[str, str], tmp_path: Path) -> None:
    """The demo bootstrap is idempotent and its key file gets a working token."""
    from app.auth.demo import ensure_demo_credentials
    from app.settings import Settings

    base, db_url = server
    engine = make_engine(db_url)
    settings = Settings(database_url=db_url, public_url=base)
    first = ensure_demo_credentials(engine, settings, tmp_path)
    second = ensure_demo_credentials(engine, settings, tmp_path)
    assert first == second
    key_file = Path(first["key_file"])
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert "password:" in Path(first["user_file"]).read_text()
    out = subprocess.run([sys.executable, "-m", "app.auth.get_token", str(key_file)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    resp = httpx.get(f"{base}/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json()["resourceType"] == "Bundle"
    assert "curl" in first["curl"] and first["client_id"] in key_file.read_text()
    engine.dispose()
