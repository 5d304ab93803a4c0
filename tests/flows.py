"""What tests of the claim and payer flows share: draining the job queue, the demo practice,
payer connections, the sandbox payer as a real process, and reading a claim's lifecycle."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import sqlalchemy as sa

from app import directory
from app.jobs import J, Worker
from app.settings import Settings
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY
from payer_adapters.sandbox import Engine, Mailbox, load_config


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
LIFECYCLE = CLAIM_LIFECYCLE
HISTORY = CLAIM_LIFECYCLE_HISTORY
SANDBOX = "http://sandbox"
#: The demo practice's visits billed to Medicare (Okafor's also has a supplement, billed second).
MEDICARE_VISITS = ("enc-alvarez-1", "enc-alvarez-2", "enc-okafor-1")


def drain(store: Any, *, base_delay: float = 0.01) -> int:
    """Run due jobs until none is left (retries scheduled later are not due)."""
    worker = Worker(store, base_delay=base_delay, max_delay=max(base_delay, 0.05))
    total = 0
    while (n := worker.run_once()):
        total += n
    return total


async def adrain(store: Any, *, base_delay: float = 0.01) -> int:
    return await asyncio.to_thread(drain, store, base_delay=base_delay)


def jobs(store: Any, tenant: str, kind: str | None = None) -> list[Any]:
    with store.engine.connect() as conn:
        q = sa.select(J).where(J.c.tenant_id == tenant).order_by(J.c.pk)
        if kind:
            q = q.where(J.c.kind == kind)
        return conn.execute(q).all()


def make_due(store: Any, tenant: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(J.update().where(J.c.tenant_id == tenant, J.c.status == "queued")
                     .values(run_after=datetime.now(timezone.utc)))


def lifecycle(claim: dict[str, Any]) -> str | None:
    return next((e["valueCode"] for e in claim.get("extension", []) if e["url"] == LIFECYCLE), None)


def history(claim: dict[str, Any]) -> list[str]:
    ext = next((e for e in claim.get("extension", []) if e["url"] == HISTORY), {"extension": []})
    return [e["url"] for e in ext["extension"]]


async def load_practice(api: httpx.AsyncClient, demo_bundle: dict[str, Any]) -> None:
    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text


async def claim_for(api: httpx.AsyncClient, encounter: str) -> dict[str, Any]:
    bundle = (await api.get(f"/fhir/Claim?encounter=Encounter/{encounter}")).json()
    claims = [e["resource"] for e in bundle.get("entry", [])]
    return max(claims, key=lambda c: c["meta"]["lastUpdated"])


def connect(store: Any, settings: Settings, tenant: str, organization: str, kind: str, cfg: dict[str, Any],
            credentials: dict[str, Any] | None = None, **kw: Any) -> directory.PayerLink:
    return directory.add(store, settings, tenant, organization, kind, cfg, credentials, **kw)


async def admin_headers(api: httpx.AsyncClient, engine: Any, tenant: str,
                        scope: str = "system/*.rs __admin") -> dict[str, str]:
    """A real Backend Services token for the tenant (``/admin`` checks tokens itself)."""
    from tests.app.auth.conftest import assertion, backend_form, make_backend

    client = make_backend(engine, tenant, scope=scope)
    form = backend_form(assertion(client.client_id, client.key, "ES384"), scope.split()[-1])
    r = await api.post("/auth/token", data=form)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


Ledger = Callable[[], dict[str, Any]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveSandbox:
    """``therabridge sandbox-payer`` in its own process on a loopback port."""

    def __init__(self, root: Path) -> None:
        import subprocess
        import sys
        import time

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.mailbox = root / "mailbox"
        exe = Path(sys.executable).with_name("therabridge")
        self.proc = subprocess.Popen([str(exe), "sandbox-payer", "--port", str(self.port), "--mailbox",
                                      str(self.mailbox), "--no-pyx12", "--poll", "0.2"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/sandbox/ledger", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("sandbox payer did not start")

    def ledger(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/sandbox/ledger", timeout=5).json()

    def sent(self, key: str) -> int:
        return sum(1 for c in self.ledger()["claims"] if c.get("idempotency_key") == key)

    def fault(self, path: str, mode: str, count: int = 1, seconds: float = 0.0) -> None:
        httpx.post(f"{self.base}/sandbox/faults", json={"path": path, "mode": mode, "count": count,
                                                        "seconds": seconds}, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


async def payer_answers_and_collect(store: Any, tenant: str, root: Path) -> tuple[Mailbox, list[str],
                                                                                list[dict[str, Any]]]:
    """The payer answers the 837P in its mailbox (999, 277CA, 835, checked), then one collection
    stores and posts them: (the payer's mailbox, the answer files written, the inbound messages)."""
    from app.payers.inbound import messages, queue_collection

    payer = Mailbox(root, Engine(load_config()), use_pyx12=False)
    written = payer.process(NOW)
    assert [w.split("_")[0] for w in written] == ["999", "277CA", "835"]
    with store.for_tenant(tenant).unit() as unit:
        assert queue_collection(unit) == 1
    await adrain(store)
    inbound = messages(store, tenant)
    assert sorted(m["kind"] for m in inbound) == ["277CA", "835", "999"]
    return payer, written, inbound


def worker_env(url: str, var: Path) -> dict[str, str]:
    """The environment of a ``therabridge worker`` process on ``url``."""
    import os

    return {**os.environ, "THERABRIDGE_DATABASE_URL": url, "THERABRIDGE_VAR_DIR": str(var),
            "THERABRIDGE_LOG_LEVEL": "warning"}


async def medicare_practice(api: httpx.AsyncClient, store: Any, tenant: str, settings: Settings, mailbox: Path,
                            bundle: dict[str, Any]) -> None:
    """The demo practice with Medicare on an X12 mailbox (no auto-submit), its claims generated."""
    await load_practice(api, bundle)
    connect(store, settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)}, profile="medicare")
    await adrain(store)


async def queued_claim(api: httpx.AsyncClient, store: Any, tenant: str, settings: Settings, mailbox: Path,
                       bundle: dict[str, Any], encounter: str = "enc-alvarez-1") -> dict[str, Any]:
    """``medicare_practice``, then the visit's claim queued with ``$submit`` (not sent yet)."""
    await medicare_practice(api, store, tenant, settings, mailbox, bundle)
    claim = await claim_for(api, encounter)
    r = await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    assert r.status_code == 202, r.text
    return r.json()


def demo_store(url: str, var: Path, tenant: str) -> tuple[Settings, Any]:
    """(settings, store) of a migrated database at ``url`` holding the demo practice in ``tenant``:
    for tests whose worker processes share that database."""
    from app.bootstrap import build_store, load_demo
    from app.db import make_engine
    from app.migrations import upgrade

    settings = Settings(database_url=url, var_dir=str(var))
    engine = make_engine(url)
    upgrade(engine)
    store = build_store(settings, engine)
    store.ensure_tenant(tenant)
    load_demo(store, tenant)
    return settings, store


def demo_with_acme(url: str, var: Path, tenant: str, sandbox_base: str, *, timeout: float) -> tuple[Settings, Any]:
    """``demo_store`` with Acme on the clearinghouse JSON API of a live sandbox payer, and the
    demo's claims generated."""
    settings, store = demo_store(url, var, tenant)
    directory.add(store, settings, tenant, "payer-acme", "clearinghouse-json",
                  {"base_url": sandbox_base, "timeout": timeout}, {"api_key": "test_sandbox_key"}, profile="commercial")
    drain(store)
    return settings, store


def generations_pending(engine: Any) -> int:
    """``generate-claim`` jobs still queued or running."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(J).where(
            J.c.kind == "generate-claim", J.c.status.in_(("queued", "running")))).scalar_one()


def two_workers_generate(engine: Any, env: dict[str, str], batch: int, *, timeout: float = 120) -> None:
    """Two real ``therabridge worker`` processes on one database, until no claim generation is
    pending (each leasing ``batch`` jobs at a time); a worker that dies fails the test."""
    command = [sys.executable, "-m", "app.cli", "worker", "--poll-seconds", "0.05", "--batch", str(batch)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        deadline = time.monotonic() + timeout
        while generations_pending(engine):
            assert time.monotonic() < deadline, "the workers did not finish"
            assert all(p.poll() is None for p in procs), "a worker died"
            time.sleep(0.1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
