"""Authorization benchmark (``python -m bench.auth``; not part of the test suite).

1. Backend Services token requests/s: a real uvicorn process (1 worker, loopback, SQLite),
   a bounded run of pre-signed ``private_key_jwt`` requests from 8 client threads.
2. Read throughput with a bearer token vs. the same server with authentication switched off
   (the core benchmark's configuration), wrk, 32 connections, bounded runs, interleaved
   rounds, medians.
3. The cost of ``app.auth.bearer.authenticate`` per request, in process: warm (signature
   already verified for this token) and cold (first sight of a token: RS256 verification).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi import FastAPI
from joserfc import jwk, jwt

from bench import wrk
from bench.core import ROOT, encounter, free_port, process

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def bench_app() -> FastAPI:
    """The production app: ``create_app`` authenticates every request with SMART bearer tokens."""
    from app.main import create_app

    return create_app()


def open_app() -> FastAPI:
    """The same app with an authenticator that trusts every caller as the bench tenant with
    ``system/*.cruds`` (no token parsed or verified): what authorization is measured against.
    Everything else — routes, scope checks on the context, audit — is identical."""
    from app.auth.scopes import ScopeSet
    from app.main import create_app
    from app.security import AccessContext

    ctx = AccessContext(tenant_id="default", scopes=ScopeSet.parse("system/*.cruds"), client_id="bench")

    async def trusted(request):  # type: ignore[no-untyped-def]
        return ctx

    return create_app(authenticate=trusted)


def signed(client_id: str, key: jwk.Key, token_url: str) -> str:
    now = int(time.time())
    return jwt.encode({"alg": "ES384", "kid": key.kid, "typ": "JWT"},
                      {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 300,
                       "iat": now, "jti": uuid.uuid4().hex}, key, algorithms=["ES384"])


def token_form(client_id: str, key: jwk.Key, token_url: str, scope: str = "system/*.cruds") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed(client_id, key, token_url)}


def measure_tokens(base: str, client_id: str, key: jwk.Key, total: int) -> dict:
    token_url = base + "/auth/token"
    forms = [token_form(client_id, key, token_url) for _ in range(total)]
    latencies: list[float] = []
    errors = 0

    def one(form: dict[str, str], client: httpx.Client) -> tuple[float, int]:
        t0 = time.perf_counter()
        status = client.post(token_url, data=form).status_code
        return time.perf_counter() - t0, status

    clients = [httpx.Client(timeout=30) for _ in range(8)]
    one(token_form(client_id, key, token_url), clients[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for elapsed, status in pool.map(lambda i: one(forms[i], clients[i % 8]), range(total)):
            latencies.append(elapsed * 1000)
            errors += status != 200
    wall = time.perf_counter() - started
    for c in clients:
        c.close()
    latencies.sort()
    return {"requests": total, "rps": total / wall, "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1], "errors": errors}


def measure_authenticate(db_url: str, iterations: int) -> dict:
    from starlette.requests import Request

    from app.auth import bearer, tokens
    from app.db import make_engine
    from app.settings import Settings

    settings = Settings(database_url=db_url)
    engine = make_engine(db_url)
    grant = tokens.Grant(tenant="default", client_id="bench", scope="system/*.cruds", grant_id="g", subject="bench")
    token = tokens.mint_access_token(engine, settings, grant, 3600)

    def request(value: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/fhir/Patient/1", "headers": [
            (b"authorization", f"Bearer {value}".encode())], "client": ("127.0.0.1", 1), "query_string": b""})

    req = request(token)
    bearer.authenticate(req, engine, settings)
    t0 = time.perf_counter()
    for _ in range(iterations):
        ctx = bearer.authenticate(req, engine, settings)
        ctx.scopes.allows("r", "Encounter")
    warm = (time.perf_counter() - t0) / iterations * 1e6
    cold_tokens = [tokens.mint_access_token(engine, settings, grant, 3600) for _ in range(500)]
    cold_requests = [request(t) for t in cold_tokens]
    t0 = time.perf_counter()
    for r in cold_requests:
        bearer.authenticate(r, engine, settings)
    cold = (time.perf_counter() - t0) / len(cold_requests) * 1e6
    engine.dispose()
    return {"warm_us": warm, "cold_us": cold, "iterations": iterations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--tokens", type=int, default=600, help="token requests in the token run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved read runs per configuration")
    args = parser.parse_args()

    from app.auth import admin
    from app.db import make_engine
    from app.migrations import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="tb-auth-bench-"))
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    admin.create_tenant(engine, "default", "Bench practice")
    key = jwk.ECKey.generate_key("P-384", parameters={"kid": "bench"})
    client_id = admin.register_client(engine, tenant="default", name="bench EHR", scope="system/*.cruds",
                                      kind="jwks", jwks={"keys": [key.as_dict(private=False)]})["client_id"]
    engine.dispose()

    results: dict = {"machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}", "backend": "SQLite"}
    port_auth, port_open = free_port(), free_port()
    base_auth, base_open = f"http://127.0.0.1:{port_auth}", f"http://127.0.0.1:{port_open}"

    def serve(factory: str, port: int, base: str):  # type: ignore[no-untyped-def]
        env = {**os.environ, "THERABRIDGE_DATABASE_URL": db_url, "THERABRIDGE_PUBLIC_URL": base,
               "THERABRIDGE_LOG_LEVEL": "warning"}
        return process([sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
                       env, base + "/healthz")

    with serve("bench.auth:bench_app", port_auth, base_auth), serve("bench.auth:open_app", port_open, base_open):
        results["tokens"] = measure_tokens(base_auth, client_id, key, args.tokens)
        token = httpx.post(base_auth + "/auth/token", data=token_form(client_id, key, base_auth + "/auth/token")).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        api = httpx.Client(base_url=base_auth + "/fhir", headers={"Content-Type": "application/fhir+json", **headers})
        pid = api.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Bench"}]}).json()["id"]
        ids = [api.post("/Encounter", json=encounter(pid, i)).json()["id"] for i in range(200)]
        api.close()
        paths = [f"/fhir/Encounter/{i}" for i in ids]
        results["unauthenticated_status"] = httpx.get(base_auth + paths[0]).status_code
        # Interleaved rounds, medians: the two servers share the machine with wrk, so one run each is noise.
        rounds: dict[str, list[dict]] = {"read_with_bearer": [], "read_without_auth": []}
        for _ in range(args.rounds):
            rounds["read_with_bearer"].append(
                wrk.run(base_auth, lua=wrk.read_script(paths, headers), seconds=args.seconds).__dict__)
            rounds["read_without_auth"].append(wrk.run(base_open, lua=wrk.read_script(paths), seconds=args.seconds).__dict__)
        for name, runs in rounds.items():
            failed = sum(r["non2xx"] + r["socket_errors"] for r in runs)
            if failed:  # a comparison of error responses would measure nothing
                raise SystemExit(f"{name}: {failed} failed requests; fix the setup before reading figures")
            runs.sort(key=lambda r: r["rps"])
            results[name] = {**runs[len(runs) // 2], "rounds_rps": [r["rps"] for r in runs]}
    unauth = results["unauthenticated_status"]
    results["authenticate"] = measure_authenticate(db_url, 100_000)
    with_bearer, without = results["read_with_bearer"]["rps"], results["read_without_auth"]["rps"]
    results["read_cost_percent"] = (1 - with_bearer / without) * 100

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "auth.json").write_text(json.dumps(results, indent=2) + "\n")
    t, a = results["tokens"], results["authenticate"]
    print(f"backend-services tokens : {t['rps']:7.0f}/s  p50 {t['p50_ms']:.1f} ms  p99 {t['p99_ms']:.1f} ms"
          f"  ({t['requests']} req, {t['errors']} errors)")
    print(f"read, bearer token      : {with_bearer:7.0f}/s  p50 {results['read_with_bearer']['p50_ms']:.2f} ms")
    print(f"read, no authentication : {without:7.0f}/s  p50 {results['read_without_auth']['p50_ms']:.2f} ms")
    print(f"authorization cost      : {results['read_cost_percent']:5.1f} % of read throughput (limit 15 %)")
    print(f"bearer.authenticate     : {a['warm_us']:.1f} µs warm, {a['cold_us']:.1f} µs first sight of a token")
    print(f"request without token   : HTTP {unauth}")


if __name__ == "__main__":
    main()
