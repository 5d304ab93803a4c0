"""A real browser for the web app's tests: Debian's Chromium driven by its chromedriver through
selenium (paths given explicitly, so selenium never looks for or downloads a driver), and a
``therabridge serve --demo`` process on its own database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from app.auth.get_token import request_token
from tests.e2e.test_server_process import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDE, NARROW = 1280, 768


def screenshot_dir() -> Path:
    """``var/screenshots/`` of the checkout (gitignored), kept after the run for a look."""
    path = Path(os.environ.get("THERABRIDGE_SCREENSHOTS", Path(__file__).resolve().parents[3] / "var" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def fresh_database(base_url: str, tmp: Path) -> Iterator[str]:
    """An empty database of the session's kind, for one module's server."""
    if not base_url.startswith("postgresql"):
        yield f"sqlite:///{tmp / 'web.db'}"
        return
    import psycopg

    name = "tb_own_" + uuid.uuid4().hex[:8]
    admin = base_url.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DemoServer:
    """``therabridge serve --demo`` (plus a worker process on PostgreSQL) on a free port."""

    def __init__(self, database_url: str, var: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.var = var
        self.database_url = database_url
        env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_VAR_DIR": str(var)}
        env.pop("THERABRIDGE_PUBLIC_URL", None)
        self.log = (var / "server.log").open("wb")
        self.procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), "--demo"],
                                       env=env, stdout=self.log, stderr=subprocess.STDOUT)]
        self._wait()
        if database_url.startswith("postgresql"):
            self.procs.append(subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env,
                                               stdout=self.log, stderr=subprocess.STDOUT))
        self.password = dict(line.split(": ", 1) for line in (var / "demo-user.txt").read_text().splitlines())["password"]

    def _wait(self) -> None:
        for _ in range(300):
            try:
                if httpx.get(self.base + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start: " + (self.var / "server.log").read_text()[-2000:])

    def cli(self, *args: str) -> str:
        """A ``therabridge`` command on the server's database (as an operator would run it)."""
        env = {**os.environ, "THERABRIDGE_DATABASE_URL": self.database_url, "THERABRIDGE_VAR_DIR": str(self.var),
               "THERABRIDGE_PUBLIC_URL": self.base}
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def api(self) -> httpx.Client:
        """The FHIR API as the EHR (backend services token), to check what the app shows."""
        token = request_token(self.var / "demo-backend-key.json")["access_token"]
        return httpx.Client(base_url=self.base + "/fhir", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


def chrome() -> Any:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDE},900", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


def session_storage(driver: Any) -> dict[str, Any]:
    raw = driver.execute_script("return JSON.stringify(Object.assign({}, sessionStorage))")
    return json.loads(raw)


def local_storage(driver: Any) -> dict[str, Any]:
    return json.loads(driver.execute_script("return JSON.stringify(Object.assign({}, localStorage))"))


def sign_in(driver: Any, server: DemoServer, username: str, password: str) -> None:
    """Sign in to the app at ``/app/`` through the server's login and consent pages."""
    from selenium.webdriver.common.by import By

    driver.get(server.base + "/app/")
    field = wait_for(lambda: driver.find_element(By.ID, "practice"), what="the practice field")
    field.clear()
    field.send_keys("demo")
    driver.find_element(By.CSS_SELECTOR, ".signin button[type=submit]").click()
    wait_for(lambda: driver.find_element(By.ID, "username"), what="the server's login page")
    assert driver.current_url.startswith(server.base + "/auth/authorize")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "button[value=approve]"), what="the consent page").click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "header.top"), what="the app after sign-in")


def settled(server: DemoServer) -> None:
    """Wait until the demo's claims have been made, sent and answered by the sandbox payer (the
    figures then hold still): some claim answered, none on its way, the same two polls running.
    Nothing on its way alone is not enough: on PostgreSQL a separate worker makes the claims, and
    before it has, no claim is on its way either."""
    seen: list[tuple[int, int]] = []

    def counts() -> tuple[int, int]:
        with server.api() as api:
            def total(states: str) -> int:
                return api.get("/Claim", params={"lifecycle": states, "_summary": "count"}).json()["total"]
            return (total("paid,partially-paid,denied,rejected"), total("queued,submitted,acknowledged,accepted"))

    def still() -> bool:
        seen.append(counts())
        answered, on_its_way = seen[-1]
        return answered > 0 and on_its_way == 0 and len(seen) > 1 and seen[-2] == seen[-1]

    wait_for(still, timeout=180, what="the demo claims answered")
