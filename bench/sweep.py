"""The scheduled front-end checks on PostgreSQL (``python -m bench.sweep``; not a test).

A tenant with the demo practice, ``--patients`` more patients on Medicare (a payer connection,
so every check has someone to ask), ``--appointments`` booked Appointments and
``--authorizations`` authorizations (ClaimResponse, use = preauthorization), half of them with
``--claims-per-auth`` claims billed under them. Loaded through the store's write path in
transactions of ``--chunk`` resources, then ANALYZE.

Two sweeps, each run by the real job runner (an ``app.jobs.Worker`` in this process, batch 50 as
``therabridge worker`` claims):
- *eligibility*: the ``eligibility-sweep`` job, then the ``eligibility-appointment`` batch jobs,
  which store the CoverageEligibilityRequests and queue ``check-eligibility``. The sending
  (``check-eligibility``) is not run; how many were queued is reported.
- *authorization*: the ``authorization-sweep`` job (``run_sweep``: usage of every authorization
  in force from its claims, renewal Tasks opened) and any job it queues.

Figures per sweep: wall time inside the worker's ``run_once`` calls, this process's CPU time
there (``time.process_time``: Python, the driver) and the CPU time of the PostgreSQL backends
serving this process's connections (``/proc/<pid>/stat`` of the pids in ``pg_stat_activity``;
same machine). Appointments are spread evenly over ``--days`` days from today (the sweep looks
at today and ``eligibility_days_ahead`` later), then, as the worst case, all on those two days
(``--layout``). The eligibility search alone is also timed before ANALYZE (``search_before_analyze_s``).

Prints one JSON line per run, with the machine and its load average.

    python -m bench.sweep [--appointments 10000] [--patients 2000] [--authorizations 2000] [--days 20]
                          [--layout spread,window]
                          [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_sweep]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from app import directory
from app.bootstrap import build_store, load_demo
from app.claims import authorizations
from app.db import make_engine
from app.fhir.store import Store
from app.jobs import J, Worker, enqueue
from app.migrations import upgrade
from app.payers import eligibility, eligibility_sweep
from app.payers.runtime import runtime
from app.settings import Settings
from bench.e2e import _demo, _renamed, _reset
from fhir_mappings.vocabulary import ADJUDICATION, THERAPY_DISCIPLINE

PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_sweep"
TENANT = "bench"
WORKER_BATCH = 50  # ``therabridge worker --batch`` default in the benches
CPT = "http://www.ama-assn.org/go/cpt"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"


def machine() -> dict[str, Any]:
    return {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}",
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _chunks(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def write_all(store: Store, resources: list[dict[str, Any]], chunk: int) -> None:
    """Through the store's write path, ``chunk`` resources per transaction."""
    ts = store.for_tenant(TENANT, actor="bench")
    for part in _chunks(resources, chunk):
        with ts.unit() as unit:
            for r in part:
                unit.update(r["resourceType"], r["id"], r)


def patients(n: int) -> list[dict[str, Any]]:
    demo = _demo()
    out = []
    for p in range(n):
        names = {"pat-alvarez": f"pat-b{p}", "cov-alvarez": f"cov-b{p}", "1EG4TE5MK73": f"1EG4TE{p:05d}"}
        out += [_renamed(demo["pat-alvarez"], names), _renamed(demo["cov-alvarez"], names)]
    return out


def appointments(n: int, n_patients: int, today: date, days: list[int]) -> list[dict[str, Any]]:
    """``n`` booked visits round-robin over the patients and over ``days`` (offsets from today)."""
    out = []
    for a in range(n):
        day = today + timedelta(days=days[a % len(days)])
        hour = 8 + a % 10
        out.append({"resourceType": "Appointment", "id": f"appt-{a}", "status": "booked",
                    "start": f"{day.isoformat()}T{hour:02d}:00:00Z", "end": f"{day.isoformat()}T{hour:02d}:45:00Z",
                    "serviceType": [{"coding": [{"system": THERAPY_DISCIPLINE, "code": "OT" if a % 2 else "PT"}]}],
                    "participant": [{"actor": {"reference": f"Patient/pat-b{a % n_patients}"}, "status": "accepted"},
                                    {"actor": {"reference": "Practitioner/ot-rivera"}, "status": "accepted"}]})
    return out


def authorization_set(n: int, n_patients: int, today: date, claims_per_auth: int) -> list[dict[str, Any]]:
    """``n`` authorizations for 12 visits (a tenth ending within the renewal notice), every
    other one with ``claims_per_auth`` one-visit claims billed under it."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        patient, ref = f"Patient/pat-b{i % n_patients}", f"AUTH-{i:06d}"
        start = today - timedelta(days=30)
        end = today + timedelta(days=5 if i % 10 == 0 else 90)
        discipline = "OT" if i % 2 else "PT"
        out.append({"resourceType": "ClaimResponse", "id": f"auth-{i}", "status": "active",
                    "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
                    "use": "preauthorization", "patient": {"reference": patient}, "created": f"{start}T12:00:00Z",
                    "insurer": {"reference": "Organization/payer-medicare"},
                    "requestor": {"reference": "Organization/demo-practice"}, "outcome": "complete",
                    "preAuthRef": ref, "preAuthPeriod": {"start": start.isoformat(), "end": end.isoformat()},
                    "addItem": [{"productOrService": {"coding": [{"system": THERAPY_DISCIPLINE, "code": discipline}]},
                                 "quantity": {"value": 12},
                                 "adjudication": [{"category": {"coding": [{"system": ADJUDICATION,
                                                                            "code": "submitted"}]}}]}]})
        if i % 2:
            continue
        for c in range(claims_per_auth):
            day = (start + timedelta(days=1 + c)).isoformat()
            out.append({"resourceType": "Claim", "id": f"claim-{i}-{c}", "status": "active", "use": "claim",
                        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
                        "patient": {"reference": patient}, "created": f"{day}T18:00:00Z",
                        "provider": {"reference": "Organization/demo-practice"},
                        "priority": {"coding": [{"code": "normal"}]},
                        "insurer": {"reference": "Organization/payer-medicare"},
                        "billablePeriod": {"start": day, "end": day},
                        "insurance": [{"sequence": 1, "focal": True, "preAuthRef": [ref],
                                       "coverage": {"reference": f"Coverage/cov-b{i % n_patients}"}}],
                        "item": [{"sequence": 1, "servicedDate": day, "quantity": {"value": 2},
                                  "productOrService": {"coding": [{"system": CPT, "code": "97530"}]},
                                  "modifier": [{"coding": [{"code": "GO" if discipline == "OT" else "GP"}]}]}]})
    return out


def setup(url: str, var: Path) -> tuple[Settings, Store]:
    _reset(url)
    settings = Settings(database_url=url, var_dir=str(var), key_encryption_key=Fernet.generate_key().decode(),
                        embedded_worker=False)
    engine = make_engine(url)
    upgrade(engine)
    store = build_store(settings, engine)
    store.ensure_tenant(TENANT)
    load_demo(store, TENANT)
    directory.add(store, settings, TENANT, "payer-medicare", "x12-directory", {"root": str(var / "mailbox")},
                  profile="medicare", auto_submit=True)
    return settings, store


def clear_jobs(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(J.delete())


def backend_cpu(store: Store) -> float:
    """CPU seconds of the PostgreSQL backends of this database (this process's pool: the bench
    is the only client), from /proc."""
    name = store.engine.url.database
    total = 0.0
    with store.engine.connect() as conn:
        pids = [r[0] for r in conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": name})]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def _due(store: Store, exclude: tuple[str, ...]) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(J).where(
            J.c.status == "queued", J.c.run_after <= store.clock(), J.c.kind.not_in(exclude))).scalar_one()


def run_jobs(store: Store, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run due jobs with a Worker until only ``exclude`` kinds are due; clocks count only the
    worker's ``run_once`` calls (not the bench's check of what is left)."""
    worker = Worker(store, batch=WORKER_BATCH, base_delay=0.01, max_delay=0.05)
    wall = cpu = 0.0
    db0 = backend_cpu(store)
    ran = batches = 0
    while _due(store, exclude):
        w0, c0 = time.perf_counter(), time.process_time()
        n = worker.run_once()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if not n:
            break
        ran, batches = ran + n, batches + 1
    db = backend_cpu(store) - db0
    return {"wall_s": round(wall, 2), "worker_cpu_s": round(cpu, 2), "db_cpu_s": round(db, 2),
            "worker_plus_db_cpu_s": round(cpu + db, 2), "jobs_run": ran, "worker_rounds": batches}


def count_jobs(store: Store, kind: str, status: str | None = None) -> int:
    with store.engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(J).where(J.c.kind == kind)
        if status:
            q = q.where(J.c.status == status)
        return conn.execute(q).scalar_one()


def failed_jobs(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(J).where(J.c.status == "failed")).scalar_one()


def count_resources(store: Store, rtype: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM resource WHERE tenant_id = :t AND type = :r AND NOT deleted"),
                            {"t": TENANT, "r": rtype}).scalar_one()


def timed_search(store: Store, today: date) -> tuple[float, int]:
    """The sweep's appointment search alone (seconds, appointments found)."""
    ahead = runtime().settings.eligibility_days_ahead
    t0 = time.perf_counter()
    with store.for_tenant(TENANT, actor="bench").unit() as unit:
        found = eligibility_sweep.booked_on(unit, [today, today + timedelta(days=ahead)])
    return time.perf_counter() - t0, len(found)


def one_run(args: argparse.Namespace, layout: str, var: Path) -> dict[str, Any]:
    _settings, store = setup(args.database_url, var)
    today = store.clock().date()
    ahead = runtime().settings.eligibility_days_ahead
    days = list(range(args.days)) if layout == "spread" else [0, ahead]
    t0 = time.perf_counter()
    write_all(store, patients(args.patients), args.chunk)
    write_all(store, appointments(args.appointments, args.patients, today, days), args.chunk)
    write_all(store, authorization_set(args.authorizations, args.patients, today, args.claims_per_auth), args.chunk)
    load_s = time.perf_counter() - t0
    clear_jobs(store)  # what the loading queued (authorization checks, the day's sweeps) is not measured
    before_s, in_window = timed_search(store, today) if args.search_before_analyze else (None, None)
    t0 = time.perf_counter()
    store.analyze()
    analyze_s = time.perf_counter() - t0
    after_s, in_window = timed_search(store, today)
    row: dict[str, Any] = {"bench": "sweep", "layout": layout, "appointments": args.appointments,
                           "days": len(days), "in_window": in_window, "patients": args.patients,
                           "load_s": round(load_s, 1), "analyze_s": round(analyze_s, 2),
                           "search_before_analyze_s": None if before_s is None else round(before_s, 2),
                           "search_after_analyze_s": round(after_s, 2)}

    ts = store.for_tenant(TENANT, actor="bench")
    with ts.unit() as unit:
        eligibility_sweep.start_schedule(unit)
    elig = run_jobs(store, exclude=(eligibility.KIND,))
    elig.update(appointment_jobs=count_jobs(store, eligibility_sweep.APPOINTMENT, "done"),
                requests_stored=count_resources(store, "CoverageEligibilityRequest"),
                check_eligibility_queued=count_jobs(store, eligibility.KIND, "queued"))
    row["eligibility"] = elig
    with store.engine.begin() as conn:  # the sending is not part of the sweep: nothing is sent
        conn.execute(J.delete().where(J.c.kind == eligibility.KIND))

    with ts.unit() as unit:
        enqueue(unit, authorizations.SWEEP, {"day": today.isoformat()}, dedupe_key=f"bench-{authorizations.SWEEP}")
    auth = run_jobs(store, exclude=(eligibility.KIND,))
    auth.update(authorizations=args.authorizations, claims=(args.authorizations + 1) // 2 * args.claims_per_auth,
                renewal_tasks=count_resources(store, "Task"))
    row["authorization"] = auth
    row["failed_jobs"] = failed_jobs(store)
    row.update(machine())
    store.engine.dispose()
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--authorizations", type=int, default=2_000)
    parser.add_argument("--claims-per-auth", type=int, default=2, help="claims under every other authorization")
    parser.add_argument("--days", type=int, default=20, help="booked days ahead for the spread layout")
    parser.add_argument("--layout", default="spread,window", help="spread, window (all in the sweep's days), or both")
    parser.add_argument("--chunk", type=int, default=500, help="resources per loading transaction")
    parser.add_argument("--search-before-analyze", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--database-url", default=PG_BENCH)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("the sweep bench measures PostgreSQL")
    print(json.dumps({"bench": "sweep", **machine()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="tb-sweep-") as tmp:
        for layout in [x.strip() for x in args.layout.split(",") if x.strip()]:
            print(json.dumps(one_run(args, layout, Path(tmp) / layout)), flush=True)


if __name__ == "__main__":
    main()
