"""End to end against a real ``therabridge serve --demo`` process on loopback, with real tokens."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import httpx
import pytest
from joserfc import jwk

from app.auth import admin
from app.auth.get_token import request_token
from app.auth.models import JWKS
from app.db import make_engine

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url) -> Iterator[dict]:
    port = free_port()
    var = tmp_path_factory.mktemp("var")
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_VAR_DIR": str(var)}
    env.pop("THERABRIDGE_PUBLIC_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    workers = []
    try:
        for _ in range(150):
            try:
                if httpx.get(base + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        if database_url.startswith("postgresql"):  # PostgreSQL deployments run worker processes
            workers.append(subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        token = request_token(var / "demo-backend-key.json")["access_token"]
        yield {"base": base, "headers": {"Authorization": f"Bearer {token}"}, "var": var, "db": database_url}
    finally:
        for p in [proc, *workers]:
            p.terminate()
            p.wait(timeout=20)


def test_no_token_is_401_with_challenge(server):
    r = httpx.get(server["base"] + "/fhir/Patient/pat-alvarez")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(server["base"] + "/fhir/metadata").status_code == 200
    assert httpx.get(server["base"] + "/fhir/.well-known/smart-configuration").status_code == 200


def test_demo_data_served_with_absolute_links(server):
    r = httpx.get(server["base"] + "/fhir/Encounter?patient=pat-alvarez&_revinclude=Procedure:encounter",
                  headers=server["headers"])
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["total"] == 2
    assert bundle["link"][0]["url"].startswith(server["base"] + "/fhir/Encounter?")
    assert all(e["fullUrl"].startswith(server["base"] + "/fhir/") for e in bundle["entry"])


def test_create_read_over_real_http(server):
    r = httpx.post(server["base"] + "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Proc"}]},
                   headers={"Content-Type": "application/fhir+json", **server["headers"]})
    assert r.status_code == 201
    read = httpx.get(r.headers["location"].rsplit("/_history", 1)[0], headers=server["headers"])
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert read.headers.get("x-request-id")


def test_embedded_worker_generates_claims_for_finished_encounters(server):
    deadline = time.time() + 30
    while time.time() < deadline:
        claims = httpx.get(server["base"] + "/fhir/Claim?_summary=count", headers=server["headers"]).json()
        if claims["total"] >= 4:
            break
        time.sleep(0.5)
    assert claims["total"] >= 4


def test_other_tenants_data_is_invisible(server, tmp_path):
    engine = make_engine(server["db"])
    admin.create_tenant(engine, "other-practice", "Other practice")
    key = jwk.ECKey.generate_key("P-384", parameters={"kid": "k1"})
    client = admin.register_client(engine, tenant="other-practice", name="Other EHR", scope="system/*.cruds",
                                   kind=JWKS, jwks={"keys": [dict(key.as_dict(private=False), alg="ES384")]})
    demo = json.loads((server["var"] / "demo-backend-key.json").read_text())
    key_file = tmp_path / "other.json"
    key_file.write_text(json.dumps({**demo, "client_id": client["client_id"], "private_jwk": key.as_dict(private=True)}))
    other = {"Authorization": f"Bearer {request_token(key_file)['access_token']}"}
    base = server["base"] + "/fhir"
    assert httpx.get(base + "/Patient/pat-alvarez", headers=other).status_code == 404
    assert httpx.get(base + "/Patient?identifier=PAT-ALVAREZ", headers=other).json()["total"] == 0
    assert httpx.get(base + "/Patient/pat-alvarez/_history", headers=other).status_code == 404
    txn = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"},
                     "subject": {"reference": "Patient?identifier=https://demo.therabridge.dev/mrn|PAT-ALVAREZ"}},
        "request": {"method": "POST", "url": "Encounter"}}]}
    assert httpx.post(base, json=txn, headers=other).status_code == 404  # the reference resolves in-tenant only
    mine = httpx.post(base, json=txn, headers=server["headers"])
    assert mine.status_code == 200
