"""KPI benchmark (``python -m bench.measures``; not part of the test suite).

Seeds the claim facts of 100,000 claims (a year of a busy practice: service dates over 2026,
four payers, twelve clinicians, OT/PT/SLP codes, 85 % paid or denied, a tenth rejected first, a
few voids and corrections, eligibility answers for most patients) straight into the facts tables
of the demo tenant on PostgreSQL with COPY, then times ``GET /fhir/Measure/{id}/$evaluate-measure``
for one month per KPI through HTTP against ``therabridge serve`` (one worker, Backend Services
token, audited) and prints p50/p95 per KPI. The facts are seeded directly: what is measured is
the evaluation, and the write path keeps them in step (tests check that).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

from bench.core import ROOT, free_port, process

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_bench_measures"
PAYERS = ["Organization/medicare", "Organization/acme", "Organization/bluecross", "Organization/medicaid"]
CODES = {"GO": ["97165", "97530", "97535"], "GP": ["97110", "97112", "97140", "97161"], "GN": ["92507", "92523"]}


def reset(url: str) -> None:
    import psycopg

    plain = url.replace("+psycopg", "")
    admin, name = plain.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(url: str, tenant: str, claims: int, rng: random.Random) -> dict[str, int]:
    import psycopg

    counts = {"claim_fact": 0, "claim_code_fact": 0, "remit_fact": 0, "eligibility_fact": 0, "writeoff_fact": 0}
    patients = max(1, claims // 20)
    start = date(2026, 1, 1)
    with psycopg.connect(url.replace("+psycopg", "")) as conn, conn.cursor() as cur:
        with cur.copy("COPY eligibility_fact (tenant_id, response_id, patient_id, answered_on, ok) FROM STDIN") as cp:
            for p in range(patients):
                if rng.random() < 0.8:
                    cp.write_row((tenant, f"elig-{p}", f"pat-{p}", start + timedelta(days=rng.randrange(0, 200)),
                                  rng.random() < 0.95))
                    counts["eligibility_fact"] += 1
        claim_rows, code_rows, remit_rows, writeoffs = [], [], [], []
        for n in range(claims):
            cid = f"claim-{n:06d}"
            dos = start + timedelta(days=rng.randrange(0, 365))
            discipline = rng.choice(list(CODES))
            codes = rng.sample(CODES[discipline], k=min(len(CODES[discipline]), rng.choice((1, 2, 2, 3))))
            charge = 8000 * len(codes) + rng.randrange(0, 4000)
            submitted = dos + timedelta(days=rng.randrange(1, 6))
            rejected = rng.random() < 0.08
            manual = rng.random() < 0.06
            is_void = rng.random() < 0.005
            prior = f"claim-{rng.randrange(0, n):06d}" if n and rng.random() < 0.02 else None
            adjudicated = None if rng.random() < 0.15 else submitted + timedelta(days=rng.randrange(10, 45))
            outcome = None
            if adjudicated is not None:
                outcome = rng.choices(["paid", "partially-paid", "denied"], [0.82, 0.1, 0.08])[0]
                paid = {"paid": int(charge * 0.8), "partially-paid": int(charge * 0.4), "denied": 0}[outcome]
                co = charge - paid if outcome != "denied" else charge
                denied = {"paid": 0, "partially-paid": charge // 2, "denied": charge}[outcome]
                remit_rows.append((tenant, f"eob-{n:06d}", cid, adjudicated, True, False, paid, co, co, denied,
                                   outcome == "denied" and rng.random() < 0.2))
            claim_rows.append((tenant, cid, f"pat-{rng.randrange(patients)}", rng.choice(PAYERS),
                               f"Practitioner/clin-{rng.randrange(12)}", dos, charge, is_void, False, prior,
                               submitted if prior else None, submitted,
                               None if rejected else submitted + timedelta(days=1),
                               submitted + timedelta(days=2) if rejected else None, adjudicated, outcome, manual,
                               rng.random() < 0.3))
            code_rows += [(tenant, cid, "cpt", c) for c in codes] + [(tenant, cid, "discipline", discipline)]
            if outcome == "denied" and rng.random() < 0.3:
                writeoffs.append((tenant, f"task-{n}", cid, adjudicated + timedelta(days=20)))
        for table, columns, rows in (
                ("claim_fact", "tenant_id, claim_id, patient_id, payer, clinician, service_date, charge_cents, is_void, "
                 "excluded, prior_claim_id, replaces_on, submitted_on, front_accepted_on, rejected_on, adjudicated_on, "
                 "first_outcome, manual, pre_auth", claim_rows),
                ("claim_code_fact", "tenant_id, claim_id, kind, value", code_rows),
                ("remit_fact", "tenant_id, eob_id, claim_id, posted_on, active, reversal, paid_cents, contractual_cents, "
                 "closing_cents, denied_cents, auth_denial", remit_rows),
                ("writeoff_fact", "tenant_id, task_id, claim_id, written_off_on", writeoffs)):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
            counts[table] = len(rows)
        conn.commit()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load (visibility map, statistics)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database (dropped and made again)")
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="requests per KPI")
    parser.add_argument("--month", default="2026-06")
    args = parser.parse_args(argv)
    reset(args.database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = ROOT / "var" / "bench-measures"
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": args.database_url, "THERABRIDGE_PUBLIC_URL": base,
           "THERABRIDGE_LOG_LEVEL": "warning", "THERABRIDGE_VAR_DIR": str(var), "THERABRIDGE_EMBEDDED_WORKER": "false"}
    from app.auth.get_token import request_token
    from app.measures.definitions import ids

    first = date.fromisoformat(args.month + "-01")
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    with process([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1", "--demo"], env,
                 base + "/healthz"):
        t0 = time.perf_counter()
        counts = seed(args.database_url, "demo", args.claims, random.Random(7))
        print(json.dumps({"seeded": counts, "seconds": round(time.perf_counter() - t0, 1)}))
        token = request_token(var / "demo-backend-key.json")["access_token"]
        client = httpx.Client(base_url=base + "/fhir", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        query = f"periodStart={first}&periodEnd={last}"
        results = {}
        for mid in ids():
            client.get(f"/Measure/{mid}/$evaluate-measure?{query}").raise_for_status()  # warm
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                r = client.get(f"/Measure/{mid}/$evaluate-measure?{query}")
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            group = r.json()["group"][0]
            times.sort()
            results[mid] = {"p50_ms": round(statistics.median(times), 1),
                            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
                            "denominator": next((p["count"] for p in group["population"]
                                                 if p["code"]["coding"][0]["code"] in ("denominator", "measure-population")), None),
                            "score": (group.get("measureScore") or {}).get("value")}
            print(json.dumps({"measure": mid, **results[mid]}))
        t = time.perf_counter()
        client.get(f"/Measure/denial-rate/$evaluate-measure?{query}&reportType=subject-list").raise_for_status()
        print(json.dumps({"measure": "denial-rate", "reportType": "subject-list",
                          "ms": round((time.perf_counter() - t) * 1000, 1)}))
        print(json.dumps({"load_average": os.getloadavg()}))
    print(json.dumps({"database_cpu_ms_per_evaluation": database_work(args.database_url, first, last)}))


def database_work(url: str, first: date, last: date) -> dict[str, float]:
    """CPU milliseconds the PostgreSQL backend spends on each KPI's statement (from /proc, mean of
    10 runs): the work, apart from the HTTP, the JSON and the machine's other load."""
    import sqlalchemy as sa

    from app.measures import definitions, queries

    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        queries.no_jit(conn)
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        for spec in definitions.data()["measures"]:
            sql = sa.text(f"WITH {queries.COMPUTATIONS[spec['computation']](conn)} "
                          f"{queries._aggregate(conn, spec['scoring'] == 'continuous-variable')}")
            p = queries.params(first, last, "demo")
            conn.execute(sql, p).all()
            before = cpu(pid)
            for _ in range(10):
                conn.execute(sql, p).all()
            out[spec["id"]] = round((cpu(pid) - before) * 100, 1)
    engine.dispose()
    return out


if __name__ == "__main__":
    main()
