"""Core FHIR API benchmark (``python -m bench.core``; not part of the test suite).

Starts ``therabridge serve`` (1 worker) on SQLite and on PostgreSQL and measures, with bounded
wrk runs (32 connections, 20 s) on loopback: Encounter reads/s and creates/s with p50/p99, the
framework ceiling (``/healthz`` in the same app and server), Encounter updates (PUT, a new
version of a random one of 1,000), a 100-entry transaction Bundle and a paged search; then the
peer fhirstarter serving the same Encounter read/create.
Every API request carries a SMART Backend Services bearer token and is audited, as in production.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import venv
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from bench import wrk

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_bench"


def encounter(patient_id: str, i: int = 0) -> dict:
    return {
        "resourceType": "Encounter", "status": "finished",
        "identifier": [{"system": "https://ehr.example/encounter", "value": f"E{i:06d}"}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "410155007", "display": "Occupational therapy"}]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"individual": {"reference": "Practitioner/ot-rivera"}}],
        "period": {"start": f"2026-10-{1 + i % 28:02d}T09:00:00-06:00", "end": f"2026-10-{1 + i % 28:02d}T10:00:00-06:00"},
        "diagnosis": [{"condition": {"reference": "Condition/cond-alvarez"}, "rank": 1}],
        "serviceProvider": {"reference": "Organization/demo-practice"},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(health)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def reset_pg() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS therabridge_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE therabridge_bench")


def measure_backend(name: str, db_url: str, seconds: int) -> dict:
    from app.auth.get_token import request_token

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = ROOT / "var" / f"bench-{name.lower()}"
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": db_url, "THERABRIDGE_PUBLIC_URL": base,
           "THERABRIDGE_LOG_LEVEL": "warning", "THERABRIDGE_VAR_DIR": str(var),
           "THERABRIDGE_EMBEDDED_WORKER": "false"}  # the benchmark measures the API alone
    out: dict = {"backend": name}

    def auth() -> dict[str, str]:  # a fresh Backend Services token (they live 5 minutes)
        return {"Authorization": "Bearer " + request_token(var / "demo-backend-key.json")["access_token"]}

    with process([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1", "--demo"], env,
                 base + "/healthz"):
        client = httpx.Client(base_url=base + "/fhir", headers={"Content-Type": "application/fhir+json", **auth()},
                              timeout=60)
        pid = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Bench"}]}).json()["id"]
        txn_ms = []
        ids: list[str] = []
        for b in range(10):
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{b:06d}{i:06d}", "resource": encounter(pid, b * 100 + i),
                 "request": {"method": "POST", "url": "Encounter"}} for i in range(100)]}
            t0 = time.perf_counter()
            r = client.post("", json=bundle)
            txn_ms.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            ids += [e["resource"]["id"] for e in r.json()["entry"]]
        if "postgresql" in db_url:  # what autovacuum does soon after a bulk load
            import psycopg
            with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("ANALYZE")
        out["transaction_100_ms_median"] = statistics.median(txn_ms)
        out["transaction_100_ms_max"] = max(txn_ms)

        page_ms, pages = [], 0
        url: str | None = f"/Encounter?patient={pid}&_count=50&_sort=date"
        while url:
            t0 = time.perf_counter()
            bundle = client.get(url).json()
            page_ms.append((time.perf_counter() - t0) * 1000)
            pages += 1
            nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            url = nxt[0].removeprefix(base + "/fhir") if nxt else None
        out["search_page_ms_median"] = statistics.median(page_ms)
        out["search_pages"] = pages

        out["ceiling"] = wrk.run(base + "/healthz", seconds=seconds).__dict__
        out["read"] = wrk.run(base, lua=wrk.read_script([f"/fhir/Encounter/{i}" for i in ids], auth()),
                              seconds=seconds).__dict__
        out["create"] = wrk.run(base, lua=wrk.post_script("/fhir/Encounter", json.dumps(encounter(pid)), auth()),
                                seconds=seconds).__dict__
        changed = {**encounter(pid, 7), "id": "__ID__"}  # each PUT makes a new version of a random Encounter
        out["update"] = wrk.run(base, lua=wrk.put_script("/fhir/Encounter/", ids, json.dumps(changed), auth()),
                                seconds=seconds).__dict__
    return out


def peer_python() -> Path:
    env_dir = ROOT / "bench" / ".venv-fhirstarter"
    py = env_dir / "bin" / "python"
    if not py.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "fhirstarter", "uvicorn"], check=True)
    return py


def measure_peer(seconds: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process([str(peer_python()), str(ROOT / "bench" / "peer_fhirstarter.py"), str(port)], dict(os.environ),
                 base + "/metadata"):
        client = httpx.Client(base_url=base, headers={"Content-Type": "application/fhir+json"}, timeout=30)
        ids = []
        for i in range(1000):
            r = client.post("/Encounter", json=encounter("p1", i))
            r.raise_for_status()
            ids.append(r.headers["location"].split("/Encounter/")[1].split("/")[0])
        return {"backend": "fhirstarter (in-memory dict)",
                "read": wrk.run(base, lua=wrk.read_script([f"/Encounter/{i}" for i in ids]), seconds=seconds).__dict__,
                "create": wrk.run(base, lua=wrk.post_script("/Encounter", json.dumps(encounter("p1"))),
                                  seconds=seconds).__dict__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--backends", default="sqlite,postgresql", help="Comma-separated: sqlite, postgresql.")
    args = parser.parse_args()
    machine = f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"machine: {machine}")
    results = []
    backends = args.backends.split(",")
    if "sqlite" in backends:
        sqlite_path = ROOT / "var" / "bench.db"
        for p in sqlite_path.parent.glob("bench.db*"):
            p.unlink()
        results.append(measure_backend("SQLite", f"sqlite:///{sqlite_path}", args.seconds))
    if "postgresql" in backends:
        reset_pg()
        results.append(measure_backend("PostgreSQL", PG_BENCH, args.seconds))
    if not args.skip_peer:
        results.append(measure_peer(args.seconds))
    for r in results:
        print(f"\n== {r['backend']}")
        for key in ("ceiling", "read", "create", "update"):
            if key in r:
                print(f"  {key:8s} {wrk.WrkResult(**r[key]).row()}")
        if "transaction_100_ms_median" in r:
            print(f"  100-entry transaction: median {r['transaction_100_ms_median']:.1f} ms, "
                  f"max {r['transaction_100_ms_max']:.1f} ms")
            print(f"  paged search: {r['search_pages']} pages of 50, median {r['search_page_ms_median']:.1f} ms/page")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "core.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
