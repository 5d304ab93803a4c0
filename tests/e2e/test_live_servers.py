"""Two server processes on one database, as a PostgreSQL deployment runs them: what one issues
the other accepts, and what they log on errors carries no PHI."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.app.fhir.db_faults import refusing_resources_with
from tests.app.fhir.helpers import patient
from tests.e2e.test_server_process import free_port

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_PUBLIC_URL": self.base}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.app.fhir.live_app:create", "--factory", "--port", str(self.port),
             "--no-access-log"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait(self) -> None:
        for _ in range(300):
            try:
                if httpx.get(self.base + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def servers(database_url, tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    logs = tmp_path_factory.mktemp("logs")
    pair = (Server(database_url, logs / "a.log"), Server(database_url, logs / "b.log"))
    try:
        for server in pair:
            server.wait()
        yield pair
    finally:
        for server in pair:
            server.stop()


def test_page_links_of_one_process_work_on_the_other(servers, tenant):
    a, b = servers
    with httpx.Client(headers={"x-test-tenant": tenant}, timeout=30) as client:
        for name in ("One", "Two", "Three"):
            assert client.post(b.base + "/fhir/Patient", json=patient(name)).status_code == 201
        for path in ("/fhir/Patient?_count=1", "/fhir/Patient/_history?_count=1"):
            first = client.get(a.base + path).json()
            nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
            second = client.get(b.base + nxt.removeprefix(a.base))
            assert second.status_code == 200, second.text
            assert second.json()["entry"][0]["fullUrl"].removeprefix(b.base) != \
                first["entry"][0]["fullUrl"].removeprefix(a.base)


FAMILY, BIRTH_DATE = "Zyxwvutsrq", "1931-02-03"


@pytest.fixture
def failing_patient_writes(database_url) -> Iterator[None]:
    with refusing_resources_with(database_url, FAMILY):
        yield


def test_a_database_error_is_logged_by_kind_and_request_id_without_phi(servers, tenant, failing_patient_writes):
    a, _ = servers
    body = patient(FAMILY, "Ana", birthDate=BIRTH_DATE)
    requests = {
        "probe-transaction": ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": body, "request": {"method": "POST", "url": "Patient"}}]}, {}),
        "probe-create": ("POST", "/fhir/Patient", body, {}),
        "probe-conditional-create": ("POST", "/fhir/Patient", body,
                                     {"If-None-Exist": f"name={FAMILY}&birthdate={BIRTH_DATE}"}),
        "probe-update": ("PUT", "/fhir/Patient/phi-probe", {**body, "id": "phi-probe"}, {}),
    }
    start = a.log.stat().st_size
    answers = {request_id: httpx.request(method, a.base + path, json=doc, timeout=30,
                                         headers={**headers, "X-Request-Id": request_id, "x-test-tenant": tenant})
               for request_id, (method, path, doc, headers) in requests.items()}
    found = httpx.get(f"{a.base}/fhir/Patient?name={FAMILY}&birthdate={BIRTH_DATE}", headers={"x-test-tenant": tenant})
    assert found.json()["total"] == 0  # nothing half-written
    time.sleep(0.5)  # the log is written by the server process
    logged = a.log.read_bytes()[start:].decode()
    assert FAMILY not in logged and BIRTH_DATE not in logged, logged
    assert "parameters" not in logged and "INSERT" not in logged
    for request_id, r in answers.items():
        assert f"request {request_id}" in logged, logged
        assert r.status_code == 500, r.text
        assert r.json()["issue"][0]["code"] == "exception" and r.headers["x-request-id"] == request_id
        assert FAMILY not in r.text and "Traceback" not in r.text
