"""The demo's payers: the sandbox payer as a child process, the three demo payers registered to
it with auto-submit, and eligibility requests for the demo coverages — so a fresh
``therabridge serve --demo`` shows claims submitted, acknowledged, paid and denied within a minute.

The child process ends with the server (``atexit``; on Linux also when the parent dies).
Connection settings come from ``data/demo_payers.json``.
"""
from __future__ import annotations

import atexit
import json
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from app.fhir.queries import find_resources
from app.claims.workflow import eligibility_request
from app.fhir.store import Store
from app.jobs import enqueue
from app import directory
from app.directory import secrets
from app.payers import eligibility
from app.payers.inbound import COLLECT
from app.payers.submission import queue_claim
from app.settings import Settings

DATA = Path(__file__).parent / "data" / "demo_payers.json"
PREFERRED_PORT = 8900
COLLECT_AFTER = (5, 10, 20, 30, 45)  # seconds: extra collections while the demo warms up

_children: list[subprocess.Popen] = []


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    if _port_free(PREFERRED_PORT):
        return PREFERRED_PORT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_sandbox(var_dir: Path) -> tuple[str, Path, subprocess.Popen]:
    """Start ``therabridge sandbox-payer`` on loopback; returns (base URL, mailbox, process)."""
    port = _free_port()
    mailbox = (var_dir / "sandbox-mailbox").resolve()
    mailbox.mkdir(parents=True, exist_ok=True)
    log = open(var_dir / "sandbox-payer.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "sandbox-payer", "--port", str(port),
                             "--mailbox", str(mailbox), "--poll", "1"], stdout=log, stderr=log,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    _children.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox payer exited (see {var_dir / 'sandbox-payer.log'})")
        try:
            if httpx.get(f"{base}/sandbox/ledger", timeout=1).status_code == 200:
                return base, mailbox, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_children()
    raise RuntimeError("the sandbox payer did not start within 30 s")


@atexit.register
def stop_children() -> None:
    while _children:
        proc = _children.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in subs.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, subs) for k, v in value.items()}
    return value


def register_demo_payers(store: Store, settings: Settings, tenant: str, base_url: str, mailbox: Path) -> list[str]:
    lines = []
    subs = {"base_url": base_url, "mailbox": str(mailbox)}
    for p in json.loads(DATA.read_text())["payers"]:
        link = directory.add(store, settings, tenant, p["organization"], p["kind"], _fill(p["settings"], subs),
                             _fill(p["credentials"], subs), profile=p.get("profile"),
                             timely_filing_days=p.get("timely_filing_days"), auto_submit=True)
        lines.append(f"  {link.organization_id} ({link.payer_id}) → {link.kind}, auto-submit on")
    return lines


def queue_demo_work(store: Store, tenant: str) -> tuple[int, int]:
    """Queue clean claims left from earlier runs, eligibility checks for each coverage, and a few
    early collections (the schedule alone would wait for the next interval)."""
    n = checks = 0
    with store.for_tenant(tenant).unit() as unit:
        for claim in find_resources(unit, "Claim", [("lifecycle", "clean")]):
            n += queue_claim(unit, claim["id"])[1] == 202
        for coverage in find_resources(unit, "Coverage", [("status", "active")]):
            asked = find_resources(unit, "CoverageEligibilityRequest",
                                   [("patient", (coverage.get("beneficiary") or {}).get("reference", ""))])
            if any(i.get("coverage", {}).get("reference") == f"Coverage/{coverage['id']}"
                   for r in asked for i in r.get("insurance") or []):
                continue  # each coverage asked once (a patient with a supplement has two)
            req = eligibility_request(unit, coverage["id"], serviced=unit.now.date(), discipline="OT",
                                      provider=None, now=unit.now)
            prepared = eligibility.prepare(unit, request_id=req.id)
            eligibility.queue(unit, prepared.request.id)
            checks += 1
        for link in directory.list_connections(unit.conn, tenant):
            for delay in COLLECT_AFTER:
                key = f"{COLLECT}:{link.pk}@demo-{unit.now.timestamp():.0f}-{delay}"
                enqueue(unit, COLLECT, {"connection": link.pk}, dedupe_key=key,
                        run_after=unit.now + timedelta(seconds=delay))
    return n, checks


def start_demo_payers(settings: Settings, store: Store, tenant: str) -> list[str]:
    """Start the sandbox payer and wire the demo practice to it; returns lines to print."""
    try:
        secrets.check_key(settings)
    except secrets.CredentialKeyError as err:
        return [f"demo payers not started: {err}"]
    var_dir = Path(settings.var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    base_url, mailbox, proc = start_sandbox(var_dir)
    lines = [f"sandbox payer (pid {proc.pid}) at {base_url}; X12 mailbox {mailbox}"]
    lines += register_demo_payers(store, settings, tenant, base_url, mailbox)
    claims, checks = queue_demo_work(store, tenant)
    lines.append(f"queued {claims} claim(s) left clean by an earlier run and {checks} eligibility check(s); "
                 f"answers are collected every {settings.collect_interval} s "
                 "(try: Claim?lifecycle=paid, CoverageEligibilityResponse)")
    if not settings.key_encryption_key:
        lines.append(f"payer credentials are encrypted with the development key {var_dir / 'credential.key'}")
    return lines
