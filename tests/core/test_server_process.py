"""A few checks against a real ``therabridge serve`` process on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_DEFAULT_TENANT": "proc-test"}
    env.pop("THERABRIDGE_PUBLIC_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_demo_data_served_with_absolute_links(server):
    r = httpx.get(server + "/fhir/Encounter?patient=pat-alvarez&_revinclude=Procedure:encounter")
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["total"] == 2
    assert bundle["link"][0]["url"].startswith(server + "/fhir/Encounter?")
    assert all(e["fullUrl"].startswith(server + "/fhir/") for e in bundle["entry"])


def test_create_read_over_real_http(server):
    r = httpx.post(server + "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Proc"}]},
                   headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201
    read = httpx.get(r.headers["location"].rsplit("/_history", 1)[0])
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert read.headers.get("x-request-id")
    assert httpx.get(server + "/readyz").json()["database"] == "ok"
