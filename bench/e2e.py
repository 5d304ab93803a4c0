"""From finished Encounters to claims at the sandbox payer (``python -m bench.e2e``; not a test).

Real processes on loopback: ``--workers`` × ``therabridge worker`` against one database, and this
process as the EHR. Visits (an Encounter with two timed Procedures, one transaction each, as a
FHIR transaction Bundle is stored) are for patients on Medicare, whose connection is
``x12-directory`` with auto-submit. Once its Encounter is ``finished`` a visit goes:
``generate-claim`` job → mapped, scrubbed, stored clean and queued → batched per payer → 837P
file in the sandbox's mailbox.

Three runs:
- *burst*: ``--burst`` finished visits already waiting, then the workers start; claims/s.
- *paced, scheduled arrivals*: ``--rate`` visits per second for ``--seconds`` finish: stored
  beforehand, each one's ``generate-claim`` job becomes due on schedule (the pipeline alone).
- *paced, live EHR writes*: the visits are recorded ``in-progress`` beforehand and this process
  updates ``--rate`` Encounters per second to ``finished`` (the EHR's writes share the cores).
Both paced runs report the claims/s that reached the payer and the p50/p99 time from a visit's
finish to its claim's recorded submission (the file is uploaded by then).

Secondary claims (``--secondary-share``, default 0.2; 0 gives the runs above with no payer
answers): that share of the patients also carry an Acme supplement (Coverage ``order`` 2,
connection ``x12-directory`` to a second mailbox, auto-submit). In every run the sandbox payer
then answers both mailboxes as files arrive (999, 277CA, 835; a child process, the payer's data
file extended with the bench's members and without Medicare's therapy cap, which 1,000 patients
on 100 member ids would pass within minutes) and the workers collect every second, so the
primaries' 835s are posted and the secondaries made and sent while the primaries still flow
(``--answers after``: the payer starts answering once every primary is submitted, which measures
the secondary phase alone). Each run then prints a second line, its secondary phase: the
secondaries that reached the payer, their claims/s (first 835 posted → last secondary
submitted) and p50/p99 from the 835's posting to the secondary's recorded submission
(``inbound_message.posted_at`` → ``claim_submission.submitted_at``), and how long the answers
waited from their collection to their posting (``received_at`` → ``posted_at``): posting gives
way to the claims while visits are waiting to be billed (``app.jobs.give_way``).

Checks what the payer got: every claim exactly once (CLM01 counted across the 837P files,
primaries and secondaries each in their own mailbox).

    python -m bench.e2e [--workers 2] [--rate 200] [--seconds 20] [--burst 3000] [--secondary-share 0.2]
                        [--answers live|after]
                        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_e2e]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.bootstrap import DEMO_BUNDLE, build_store, load_demo
from app.db import make_engine
from app.fhir.store import Store
from app.jobs import J
from app.migrations import upgrade
from app import directory
from app.payers.models import INBOUND as M, SUBMISSIONS as S
from app.settings import Settings
from fhir_mappings.vocabulary import X12_CLAIM_FILING_INDICATOR
from payer_adapters.x12_files import read_batch_numbers

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_e2e"
TENANT = "bench"
WORKER_BATCH = 50  # jobs a worker claims per round (``therabridge worker --batch``)
TEMPLATES = ("pat-alvarez", "cov-alvarez", "cond-alvarez", "poc-alvarez")
SECONDARY_SHARE = 0.2  # share of the patients with a supplement (``--secondary-share``)
SUPPLEMENT_MEMBER = "ACMSUPP00001"  # the sandbox's supplement member: pays what Medicare left
COLLECT_INTERVAL = 1  # seconds between the workers' collections when the payer answers


@dataclass
class Payers:
    """The bench's payer connections: Medicare (every primary) and, with secondaries, Acme."""

    mailbox: Path
    primary: int  # connection pk
    supplement_mailbox: Path | None = None
    supplement: int | None = None


def has_secondary(p: int, share: float) -> bool:
    """Whether patient ``p`` carries a supplement: ``share`` of the patients, spread evenly."""
    return int((p + 1) * share) > int(p * share)


def _reset(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def _demo() -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in orjson.loads(DEMO_BUNDLE.read_bytes())["entry"]}


def _renamed(resource: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    raw = orjson.dumps(resource)
    for old, new in names.items():
        raw = raw.replace(old.encode(), new.encode())
    return orjson.loads(raw)


def setup(url: str, var: Path, patients: int, share: float = 0.0) -> tuple[Settings, Store, Payers]:
    _reset(url)
    settings = Settings(database_url=url, var_dir=str(var), key_encryption_key=Fernet.generate_key().decode(),
                        embedded_worker=False, **({"collect_interval": COLLECT_INTERVAL} if share else {}))
    engine = make_engine(url)
    upgrade(engine)
    store = build_store(settings, engine)
    store.ensure_tenant(TENANT)
    load_demo(store, TENANT)
    with store.engine.begin() as conn:  # the demo's own visits are not part of the measurement
        conn.exec_driver_sql("DELETE FROM job")
    mailbox = var / "mailbox"
    link = directory.add(store, settings, TENANT, "payer-medicare", "x12-directory", {"root": str(mailbox)},
                         profile="medicare", auto_submit=True)
    payers = Payers(mailbox, link.pk)
    if share:
        payers.supplement_mailbox = var / "mailbox-acme"
        payers.supplement = directory.add(store, settings, TENANT, "payer-acme", "x12-directory",
                                          {"root": str(payers.supplement_mailbox)}, profile="commercial",
                                          auto_submit=True).pk
    demo = _demo()
    ts = store.for_tenant(TENANT)
    with ts.unit() as unit:
        for p in range(patients):
            names = {"pat-alvarez": f"pat-{p}", "cov-alvarez": f"cov-{p}", "cond-alvarez": f"cond-{p}",
                     "poc-alvarez": f"poc-{p}", "1EG4TE5MK73": f"1EG4TE5MK{p % 100:02d}"}
            for rid in TEMPLATES:
                r = _renamed(demo[rid], names)
                unit.update(r["resourceType"], r["id"], r)
            if has_secondary(p, share):
                for r in supplement_coverages(_renamed(demo["cov-alvarez"], names)):
                    unit.update(r["resourceType"], r["id"], r)
    store.analyze()
    return settings, store, payers


def supplement_coverages(medicare: dict[str, Any]) -> list[dict[str, Any]]:
    """The patient's Medicare Coverage as order 1 and an Acme supplement as order 2."""
    supplement = json.loads(json.dumps(medicare))
    supplement.update(id=f"{medicare['id']}-supp", order=2, subscriberId=SUPPLEMENT_MEMBER,
                      payor=[{"reference": "Organization/payer-acme"}],
                      type={"coding": [{"system": X12_CLAIM_FILING_INDICATOR, "code": "CI"}]})
    return [{**medicare, "order": 1}, supplement]


def payer_data() -> dict[str, Any]:
    """The sandbox's data file for the bench: the bench's 100 Medicare member ids (each like the
    demo's member, deductible met, so every claim leaves the patient 20 %), and Medicare without
    its therapy cap (100 members × dozens of visits would pass it, and capped lines leave the
    patient nothing for a supplement to pay)."""
    from payer_adapters.sandbox import load_config

    data = load_config().data
    template = data["members"]["1EG4TE5MK73"]
    for i in range(100):
        member = json.loads(json.dumps(template))
        member["deductible"]["met"] = member["deductible"]["total"]
        data["members"][f"1EG4TE5MK{i:02d}"] = member
    data["payers"]["MCRDEMO"]["kx_threshold"] = None
    return data


def run_payer(roots: list[str], data: dict[str, Any], stop_event: Any) -> None:
    """The sandbox payer (child process): answer every 837P in the mailboxes as it arrives, one
    payer ledger behind both, until told to stop."""
    from payer_adapters.sandbox import Engine, Mailbox
    from payer_adapters.sandbox.config import SandboxConfig

    engine = Engine(SandboxConfig(data=data))
    boxes = [Mailbox(root, engine, use_pyx12=False) for root in roots]
    while not stop_event.is_set():
        for box in boxes:
            box.process(datetime.now(timezone.utc))
        stop_event.wait(0.2)


def start_payer(payers: Payers) -> tuple[Any, Any] | None:
    """The sandbox payer answering the bench's mailboxes, when the run has secondaries."""
    if payers.supplement_mailbox is None:
        return None
    ctx = multiprocessing.get_context("spawn")
    stop_event = ctx.Event()
    proc = ctx.Process(target=run_payer, args=([str(payers.mailbox), str(payers.supplement_mailbox)], payer_data(),
                                               stop_event), daemon=True)
    proc.start()
    return proc, stop_event


def stop_payer(payer: tuple[Any, Any] | None) -> None:
    if payer is None:
        return
    proc, stop_event = payer
    stop_event.set()
    proc.join(timeout=30)
    if proc.exitcode not in (0, None):
        print(f"the sandbox payer exited with code {proc.exitcode}", file=sys.stderr)


def _visit(n: int, patients: int) -> list[dict[str, Any]]:
    demo = getattr(_visit, "demo", None) or _demo()
    _visit.demo = demo  # type: ignore[attr-defined]
    p = n % patients
    names = {"pat-alvarez": f"pat-{p}", "cond-alvarez": f"cond-{p}", "enc-alvarez-1": f"enc-{n}"}
    return [_renamed(demo[rid], names) for rid in ("enc-alvarez-1", "enc-alvarez-1-p1", "enc-alvarez-1-p2")]


def write_visit(store: Store, n: int, patients: int, *, status: str = "finished") -> None:
    """One visit (Encounter + two Procedures) in one transaction, as a FHIR transaction Bundle."""
    with store.for_tenant(TENANT).unit() as unit:
        for resource in _visit(n, patients):
            if resource["resourceType"] == "Encounter":
                resource["status"] = status
            unit.update(resource["resourceType"], resource["id"], resource)


def finish_visit(store: Store, n: int, patients: int) -> float:
    """The EHR closes the visit: its Encounter becomes ``finished``. Returns the commit time."""
    encounter = _visit(n, patients)[0]
    with store.for_tenant(TENANT).unit() as unit:
        unit.update("Encounter", encounter["id"], encounter)
    return time.time()


def start_workers(n: int, settings: Settings, var: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": settings.database_url, "THERABRIDGE_VAR_DIR": str(var),
           "THERABRIDGE_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "", "THERABRIDGE_LOG_LEVEL": "warning",
           "THERABRIDGE_COLLECT_INTERVAL": str(settings.collect_interval)}
    var.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--poll-seconds", "0.05",
                              "--batch", str(WORKER_BATCH)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=(var / f"worker-{i}.log").open("ab")) for i in range(n)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def utilisation(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 2) if total else None


def stop(workers: list[subprocess.Popen]) -> None:
    for i, w in enumerate(workers):
        if w.poll() is not None:  # a run with a dead worker measures something else: say so
            print(f"worker {i} had exited with code {w.returncode}; see worker-{i}.log", file=sys.stderr)
        w.terminate()
    for w in workers:
        w.wait(timeout=30)


def submitted(store: Store, connection: int) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(S).where(
            S.c.tenant_id == TENANT, S.c.status == "submitted", S.c.connection_pk == connection)).scalar_one()


def wait_for(store: Store, n: int, timeout: float, connection: int) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if submitted(store, connection) >= n:
            return True
        time.sleep(0.05)
    return False


def _epoch(at: Any) -> float:
    at = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def submission_times(store: Store, connection: int) -> dict[str, float]:
    """Encounter id → when its claim's submission to ``connection`` was recorded (epoch seconds)."""
    mark = "%s" if store.postgres else "?"
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT sr.target_id, s.submitted_at FROM claim_submission s "
            "JOIN resource r ON r.tenant_id = s.tenant_id AND r.type = 'Claim' AND r.id = s.claim_id "
            "JOIN search_reference sr ON sr.res_pk = r.pk AND sr.param = 'encounter' "
            f"WHERE s.tenant_id = {mark} AND s.status = 'submitted' AND s.connection_pk = {mark}",
            (TENANT, connection)).all()
    return {enc: _epoch(at) for enc, at in rows}


def secondary_latencies(store: Store, payers: Payers) -> list[tuple[float, float]]:
    """(835 posted, secondary submitted) per secondary claim submitted: the 835 is the answer to
    the 837P file that carried the claim the secondary follows (``Claim.related``)."""
    with store.engine.connect() as conn:
        subs = conn.execute(sa.select(S.c.claim_id, S.c.submitted_at, S.c.connection_pk, S.c.file_name).where(
            S.c.tenant_id == TENANT, S.c.status == "submitted")).all()
        answers = conn.execute(sa.select(M.c.name, M.c.posted_at).where(
            M.c.tenant_id == TENANT, M.c.connection_pk == payers.primary, M.c.posted_at.is_not(None))).all()
    posted = {r.name.rsplit("/", 1)[-1]: _epoch(r.posted_at) for r in answers}  # outbox/835_<key>.x12
    primary_file = {r.claim_id: r.file_name for r in subs if r.connection_pk == payers.primary}
    secondaries = {r.claim_id: _epoch(r.submitted_at) for r in subs if r.connection_pk == payers.supplement}
    with store.for_tenant(TENANT).reading() as reader:
        claims = reader.current_many([("Claim", c) for c in secondaries])
    out = []
    for (_, cid), version in claims.items():
        follows = orjson.loads(version.content or "{}")["related"][0]["claim"]["reference"].split("/", 1)[1]
        answer = f"835_{(primary_file.get(follows) or '').removeprefix('837P_')}"
        if answer in posted:
            out.append((posted[answer], secondaries[cid]))
    return out


def posting_lags(store: Store) -> list[float]:
    """Seconds from an answer's collection (``inbound_message.received_at``) to its posting, for
    every answer posted: how long answers gave way to the claims (``jobs.give_way``)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(M.c.received_at, M.c.posted_at).where(
            M.c.tenant_id == TENANT, M.c.posted_at.is_not(None))).all()
    return [_epoch(r.posted_at) - _epoch(r.received_at) for r in rows]


def secondary_phase(store: Store, payers: Payers, mode: str, expected: int, timeout: float) -> dict[str, Any]:
    """Wait for the secondaries (one per primary of a patient with a supplement) and measure
    them, and the answers' wait from collection to posting."""
    assert payers.supplement is not None and payers.supplement_mailbox is not None
    complete = wait_for(store, expected, timeout, payers.supplement)
    lags = posting_lags(store)
    pairs = secondary_latencies(store, payers)
    latency = [sent - posted for posted, sent in pairs]
    span = (max(s for _, s in pairs) - min(p for p, _ in pairs)) if pairs else 0.0
    return {"mode": f"{mode}: secondary phase", "secondary_expected": expected, "all_submitted": complete,
            "secondary_submitted": submitted(store, payers.supplement), "secondary_timed": len(pairs),
            "secondaries_per_second": round(len(pairs) / span, 1) if span > 0 else None,
            "posted_835_to_submitted_p50_s": round(statistics.median(latency), 3) if latency else None,
            "posted_835_to_submitted_p99_s": round(pct(latency, 0.99), 3) if latency else None,
            "posted_835_to_submitted_max_s": round(max(latency), 3) if latency else None,
            "answers_posted": len(lags),
            "answer_collected_to_posted_p50_s": round(statistics.median(lags), 3) if lags else None,
            "answer_collected_to_posted_p99_s": round(pct(lags, 0.99), 3) if lags else None,
            "answer_collected_to_posted_max_s": round(max(lags), 3) if lags else None,
            **{f"payer_secondary_{k}": v for k, v in zip(("files", "claims", "distinct_claims"),
                                                         at_payer(payers.supplement_mailbox))}}


def expected_secondaries(visits: int, patients: int, share: float) -> int:
    return sum(1 for n in range(visits) if has_secondary(n % patients, share))


def at_payer(mailbox: Path) -> tuple[int, int, int]:
    """(837P files, claims in them, distinct claims) across the mailbox's inbox and processed."""
    files, clms = 0, []
    for folder in ("inbox", "processed"):
        for f in (mailbox / folder).glob("837P_*.x12") if (mailbox / folder).exists() else []:
            files += 1
            clms += read_batch_numbers(f.read_bytes()).claims
    return files, len(clms), len(set(clms))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced(url: str, workers: int, rate: float, seconds: float, patients: int, *, live: bool,
          share: float = 0.0, answers: str = "live") -> list[dict[str, Any]]:
    """Visits finish at ``rate`` per second. ``live``: this process updates each Encounter to
    ``finished`` on schedule (the EHR's writes share the 2 cores with the pipeline). Otherwise the
    visits are stored finished beforehand and each one's ``generate-claim`` job becomes due on
    schedule: the pipeline alone, an arrival being the moment its job becomes due. With ``share``
    the payer answers as files arrive, and a second row measures the secondaries."""
    var = Path(tempfile.mkdtemp(prefix="therabridge-e2e-"))
    settings, store, payers = setup(url, var, patients, share)
    total = int(rate * seconds)
    for n in range(total):
        write_visit(store, n, patients, status="in-progress" if live else "finished")
    store.analyze()
    finished: dict[str, float] = {}
    if not live:
        start = time.time() + 3.0
        finished = {f"enc-{n}": start + n / rate for n in range(total)}
        with store.engine.begin() as conn:
            rows = conn.execute(sa.select(J.c.pk, J.c.payload).where(J.c.kind == "generate-claim")).all()
            conn.execute(J.update().where(J.c.pk == sa.bindparam("k")).values(run_after=sa.bindparam("due")), [
                {"k": r.pk, "due": datetime.fromtimestamp(finished[orjson.loads(r.payload)["encounter"]], timezone.utc)}
                for r in rows])
    payer = start_payer(payers) if answers == "live" else None
    procs = start_workers(workers, settings, var)
    if live:
        time.sleep(2.0)  # workers up and polling
        start = time.time()
    busy = machine_busy()
    for n in range(total) if live else ():
        delay = start + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        finished[f"enc-{n}"] = finish_visit(store, n, patients)
    arrivals_end = time.time() if live else start + total / rate
    complete = wait_for(store, total, timeout=max(0.0, arrivals_end - time.time()) + 120, connection=payers.primary)
    used = utilisation(busy, machine_busy())
    worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
    payer = payer or start_payer(payers)
    mode = "paced, live EHR writes" if live else "paced, scheduled arrivals"
    second = [secondary_phase(store, payers, mode, expected_secondaries(total, patients, share), 300)] if share else []
    stop(procs)
    stop_payer(payer)
    sent = submission_times(store, payers.primary)
    latency = [sent[e] - t for e, t in finished.items() if e in sent]
    last = max(sent.values()) if sent else arrivals_end
    files, claims, distinct = at_payer(payers.mailbox)
    store.engine.dispose()
    return [{
        "mode": mode, "workers": workers,
        "offered_per_second": rate, "visits": total,
        "arrivals_achieved_per_second": round(total / (arrivals_end - start), 1),
        "all_submitted": complete, "submitted": len(sent),
        "claims_per_second_end_to_end": round(len(sent) / (last - start), 1),
        "finished_to_submitted_p50_s": round(statistics.median(latency), 3) if latency else None,
        "finished_to_submitted_p99_s": round(pct(latency, 0.99), 3) if latency else None,
        "finished_to_submitted_max_s": round(max(latency), 3) if latency else None,
        "worker_cpu_ms_per_claim": round(1000 * worker_cpu / total, 2), "machine_cpu_busy": used,
        "payer_files": files, "payer_claims": claims, "payer_distinct_claims": distinct,
    }, *second]


def burst(url: str, workers: int, visits: int, patients: int, share: float = 0.0,
          answers: str = "live") -> list[dict[str, Any]]:
    var = Path(tempfile.mkdtemp(prefix="therabridge-e2e-"))
    settings, store, payers = setup(url, var, patients, share)
    for n in range(visits):
        write_visit(store, n, patients)
    store.analyze()
    payer = start_payer(payers) if answers == "live" else None
    start, busy = time.time(), machine_busy()
    procs = start_workers(workers, settings, var)
    complete = wait_for(store, visits, timeout=600, connection=payers.primary)
    elapsed = time.time() - start
    used = utilisation(busy, machine_busy())
    worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
    payer = payer or start_payer(payers)
    second = ([secondary_phase(store, payers, "burst", expected_secondaries(visits, patients, share), 300)]
              if share else [])
    stop(procs)
    stop_payer(payer)
    files, claims, distinct = at_payer(payers.mailbox)
    store.engine.dispose()
    return [{"mode": "burst", "workers": workers, "visits": visits, "all_submitted": complete,
            "seconds_including_worker_start": round(elapsed, 2),
            "claims_per_second_end_to_end": round(visits / elapsed, 1),
            "worker_cpu_ms_per_claim": round(1000 * worker_cpu / visits, 2), "machine_cpu_busy": used,
            "payer_files": files, "payer_claims": claims, "payer_distinct_claims": distinct}, *second]


def exactly_once(row: dict[str, Any]) -> None:
    """Say so on stderr when a run's payer did not get every claim exactly once."""
    for prefix, sent in (("payer_", row.get("submitted", row.get("visits"))),
                         ("payer_secondary_", row.get("secondary_submitted"))):
        claims, distinct = row.get(f"{prefix}claims"), row.get(f"{prefix}distinct_claims")
        if claims is not None and (claims != distinct or claims != sent):
            print(f"{row['mode']}: the payer got {claims} claims, {distinct} distinct, of {sent} submitted",
                  file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=PG_BENCH)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--worker-batch", type=int, default=WORKER_BATCH)
    parser.add_argument("--secondary-share", type=float, default=SECONDARY_SHARE,
                        help="share of the patients with a supplement (order 2); the payer answers and the "
                             "secondaries are measured (0: no secondaries, no payer answers)")
    parser.add_argument("--answers", choices=("live", "after"), default="live",
                        help="live: the payer answers while the primaries flow; after: once every primary "
                             "is submitted (the secondary phase alone)")
    args = parser.parse_args()
    if not 0 <= args.secondary_share <= 1:
        parser.error("--secondary-share is a share: 0 to 1")
    globals()["WORKER_BATCH"] = args.worker_batch
    machine = f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    results = {"machine": machine, "runs": []}
    rows: list[list[dict[str, Any]]] = []
    if args.burst:
        rows.append(burst(args.database_url, args.workers, args.burst, args.patients, args.secondary_share,
                          args.answers))
        for row in rows[-1]:
            print(json.dumps(row), flush=True)
            exactly_once(row)
    if args.rate and args.seconds:
        for live in (False, True):
            rows.append(paced(args.database_url, args.workers, args.rate, args.seconds, args.patients, live=live,
                              share=args.secondary_share, answers=args.answers))
            for row in rows[-1]:
                print(json.dumps(row), flush=True)
                exactly_once(row)
    results["runs"] = [row for run in rows for row in run]
    results["secondary_share"] = args.secondary_share
    results["answers"] = args.answers
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
