"""A/R searches and worklists at volume on PostgreSQL (``python -m bench.worklists``; not a test).

Seeds ``--claims`` Claims (a mix of lifecycles over eight payers, dates of service over 400
days), ExplanationOfBenefits for about ``--eob-share`` of them (paid in full, in part, denied,
2% reversed) and ``--tasks`` denial work items (scored as the server scores them), in the demo
tenant, whose Backend Services token the bench uses. ``--sample`` of each kind go through the store's own write
path; the rest are COPYed straight into the store's tables, with the index rows computed by
the store's own indexer (``TenantStore.index_values``) from the stored content, then the derived
rows (``Claim.outstanding``) by the store's own ``derived.refresh``, and the claim facts the
aging reads by ``therabridge measures rebuild``'s own code (timed). Before timing, the rows of
the sample (real writes) are compared with what the bulk path computes for the same resources
(they must be identical), and every claim's outstanding row with billed less settled computed
independently. Then ANALYZE.

Then ``therabridge serve`` (one worker) answers, through HTTP with a Backend Services token:
``Claim/$ar-aging``, a worklist page (``Task?status=requested&category=…&_sort=-priority-score
&_count=50``) and Claim searches sorted by outstanding, billed, service date and payer. Each
is asked ``--repeat`` times after two warm-up requests; p50 and p95 in ms are printed, with the
database's own time for the search statement of each (``EXPLAIN ANALYZE``, same SQL the
server runs), rows returned, and the machine and its load average.

    python -m bench.worklists [--claims 100000] [--tasks 20000] [--eob-share 0.4] [--repeat 20]
                              [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_worklists]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl

import httpx
import orjson
import psycopg
import sqlalchemy as sa

from app.auth.demo import TENANT as DEMO_TENANT
from app.bootstrap import build_store
from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.search_params import parse_search
from app.fhir.search_sql import R as RES, query_conditions, sort_plan
from app.fhir.store import Store, derived, serialize
from app.fhir.tasks import task_input, work_item
from app.measures import facts
from app.migrations import upgrade
from app.payers import worklists
from app.settings import Settings
from bench.core import free_port
from bench.e2e import _reset
from bench.sweep import machine
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY, DENIAL_CATEGORY

ROOT = Path(__file__).resolve().parents[1]
PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_worklists"
GROUP = "https://x12.org/codes/claim-adjustment-group-codes"
PAYERS = [f"payer-{n}" for n in range(8)]
CATEGORIES = ["authorization", "coding", "eligibility", "medical-necessity", "timely-filing", "duplicate",
              "coordination-of-benefits", "missing-information"]
# lifecycle code -> share of the claims
LIFECYCLES = [("submitted", 0.55), ("acknowledged", 0.05), ("partially-paid", 0.12), ("paid", 0.13),
              ("denied", 0.10), ("clean", 0.05)]
INDEX_TABLES = {"tokens": ("search_token", ("param", "system", "code")),
                "strings": ("search_string", ("param", "value", "exact")),
                "dates": ("search_date", ("param", "start", "end")),
                "references": ("search_reference", ("param", "target_type", "target_id")),
                "numbers": ("search_number", ("param", "value"))}


# -- the data ---------------------------------------------------------------------------------

def claims(n: int, today: date, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    codes, weights = zip(*LIFECYCLES)
    for i in range(n):
        dos = today - timedelta(days=rng.randrange(3, 400))
        state = rng.choices(codes, weights)[0]
        history = {"clean": dos + timedelta(days=1)}
        if state != "clean":
            history["submitted"] = dos + timedelta(days=2)
            if state != "submitted":  # answered by today
                history[state] = min(dos + timedelta(days=rng.randrange(10, 60)), today)
        total = f"{rng.randrange(5000, 200000) / 100:.2f}"
        out.append({
            "resourceType": "Claim", "id": f"c-{i}", "status": "active", "use": "claim",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "patient": {"reference": f"Patient/p-{i % 5000}"}, "created": f"{dos.isoformat()}T12:00:00Z",
            "insurer": {"reference": f"Organization/{PAYERS[i % len(PAYERS)]}"},
            "provider": {"reference": "Organization/demo-practice"}, "priority": {"coding": [{"code": "normal"}]},
            "total": {"value": float(total), "currency": "USD"},
            "item": [{"sequence": 1, "servicedDate": dos.isoformat(),
                      "productOrService": {"coding": [{"code": "97110"}]},
                      "net": {"value": float(total), "currency": "USD"}}],
            "extension": [{"url": CLAIM_LIFECYCLE, "valueCode": state},
                          {"url": CLAIM_LIFECYCLE_HISTORY, "extension": [
                              {"url": code, "valueInstant": f"{day.isoformat()}T10:00:00Z"}
                              for code, day in history.items()]}],
        })
    return out


def eobs(claim_list: list[dict[str, Any]], share: float, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for claim in claim_list:
        state = claim["extension"][0]["valueCode"]
        if state in ("clean", "submitted") or rng.random() > share / 0.4:
            continue
        total = claim["total"]["value"]
        paid = 0.0 if state == "denied" else round(total * (0.6 if state == "partially-paid" else 0.8), 2)
        co = round(total - paid if state != "partially-paid" else total * 0.1, 2)
        day = claim["extension"][1]["extension"][-1]["valueInstant"]
        eob = {"resourceType": "ExplanationOfBenefit", "id": f"e-{claim['id']}", "status": "active", "use": "claim",
               "claim": {"reference": f"Claim/{claim['id']}"}, "patient": claim["patient"], "created": day,
               "outcome": "complete", "payment": {"amount": {"value": paid, "currency": "USD"}},
               "item": [{"sequence": 1, "adjudication": [
                   {"category": {"coding": [{"system": GROUP, "code": "CO"}]},
                    "amount": {"value": co, "currency": "USD"}}]}]}
        out.append(eob)
        if rng.random() < 0.02:  # reversed
            rev = orjson.loads(orjson.dumps(eob))
            rev["id"] = f"r-{claim['id']}"
            rev["payment"]["amount"]["value"] = -paid
            rev["item"][0]["adjudication"][0]["amount"]["value"] = -co
            out.append(rev)
    return out


def tasks(n: int, today: date, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        authored = today - timedelta(days=rng.randrange(0, 90))
        category = CATEGORIES[i % len(CATEGORIES)]
        amount = rng.randrange(1000, 150000) / 100
        task = work_item("denial", "Work the denial", f"Bench item {i}",
                         datetime(authored.year, authored.month, authored.day, 9, tzinfo=timezone.utc),
                         task_id=f"t-{i}", focus=f"Claim/c-{i * 5}", patient={"reference": f"Patient/p-{i % 5000}"},
                         business_status=category, inputs=[
                             task_input("category", valueCodeableConcept={"coding": [{"system": DENIAL_CATEGORY,
                                                                                      "code": category}]}),
                             task_input("amount", valueMoney={"value": amount, "currency": "USD"}),
                             task_input("payer", valueReference={"reference": f"Organization/{PAYERS[i % 8]}"})])
        task["restriction"] = {"period": {"end": (authored + timedelta(days=rng.choice((30, 60, 90, 120)))).isoformat()}}
        if rng.random() < 0.2:
            task["status"] = "completed"
            task["businessStatus"] = {"text": "resolved"}
        worklists.stamp(task, today)
        out.append(task)
    return out


# -- loading ----------------------------------------------------------------------------------

def write_sample(store: Store, tenant: str, resources: list[dict[str, Any]]) -> None:
    """Through the store's write path, one transaction."""
    with store.for_tenant(tenant, actor="bench").unit() as unit:
        for r in resources:
            unit.update(r["resourceType"], r["id"], r, fresh_id=True)


def copy_bulk(store: Store, tenant: str, resources: list[dict[str, Any]], now: datetime) -> None:
    """COPY the resources, their first history version and their index rows."""
    dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    contents = [(r["resourceType"], r["id"], serialize(r, r["id"], 1, now)) for r in resources]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY resource (tenant_id, type, id, version_id, last_updated, deleted, content) FROM STDIN") as cp:
            for rtype, rid, content in contents:
                cp.write_row((tenant, rtype, rid, 1, now, False, content))
        with cur.copy("COPY resource_history (tenant_id, type, id, version_id, last_updated, method, deleted, content)"
                      " FROM STDIN") as cp:
            for rtype, rid, content in contents:
                cp.write_row((tenant, rtype, rid, 1, now, "PUT", False, content))
        pks: dict[tuple[str, str], int] = {}
        for rtype in {c[0] for c in contents}:
            cur.execute("SELECT id, pk FROM resource WHERE tenant_id = %s AND type = %s", (tenant, rtype))
            pks.update({(rtype, rid): pk for rid, pk in cur.fetchall()})
        buffers: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in INDEX_TABLES}
        ts = store.for_tenant(tenant)
        for (rtype, rid, content), resource in zip(contents, resources):
            idx = ts.index_values(rtype, orjson.loads(content))
            pk = pks[(rtype, rid)]
            for kind in INDEX_TABLES:
                buffers[kind] += [(tenant, rtype, pk, *row) for row in getattr(idx, kind)]
        for kind, (table, columns) in INDEX_TABLES.items():
            cols = ", ".join(f'"{c}"' for c in ("tenant_id", "type", "res_pk", *columns))
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                for row in buffers[kind]:
                    cp.write_row(row)
        conn.commit()
    store.analyze()  # the statement below plans on statistics
    # The derived rows (Claim.outstanding), as the store's writes compute them, for every claim.
    with store.engine.begin() as conn:
        for ds in derived.plan(store.registry).own.values():
            for d in ds:
                derived.refresh(conn, tenant, d, None)


def verify_derived(store: Store, tenant: str) -> int:
    """Every claim's outstanding row == billed less the settled amounts of its EOBs, computed
    here independently (one GROUP BY); returns how many claims were checked."""
    sql = """
    WITH settled AS (
      SELECT l.target_id AS claim_id, sum(n.value) AS v FROM search_reference l
      JOIN search_number n ON n.res_pk = l.res_pk AND n.param = 'settled'
      WHERE l.tenant_id = :t AND l.type = 'ExplanationOfBenefit' AND l.param = 'claim' GROUP BY l.target_id)
    SELECT count(*), count(*) FILTER (WHERE o.value IS DISTINCT FROM b.value - coalesce(s.v, 0))
    FROM resource r JOIN search_number b ON b.res_pk = r.pk AND b.param = 'billed'
    LEFT JOIN search_number o ON o.res_pk = r.pk AND o.param = 'outstanding'
    LEFT JOIN settled s ON s.claim_id = r.id
    WHERE r.tenant_id = :t AND r.type = 'Claim'"""
    with store.engine.connect() as conn:
        total, wrong = conn.execute(sa.text(sql), {"t": tenant}).one()
    if wrong:
        raise SystemExit(f"{wrong} of {total} claims have an outstanding row that is not billed less settled")
    return int(total)


def verify_sample(store: Store, tenant: str, sample: list[dict[str, Any]]) -> int:
    """The index rows real writes stored for ``sample`` == what the bulk path computes for them."""
    checked = 0
    derived_params = {d.param for ds in derived.plan(store.registry).own.values() for d in ds}
    with store.engine.connect() as conn:
        for r in sample:
            pk, content = conn.execute(sa.text("SELECT pk, content::text FROM resource WHERE tenant_id = :t AND "
                                               "type = :ty AND id = :i"),
                                       {"t": tenant, "ty": r["resourceType"], "i": r["id"]}).one()
            stored: dict[str, list[tuple[Any, ...]]] = {}
            for kind, (table, columns) in INDEX_TABLES.items():
                cols = ", ".join(f'"{c}"' for c in columns)
                rows = conn.execute(sa.text(f"SELECT {cols} FROM {table} WHERE res_pk = :pk"), {"pk": pk}).all()
                stored[kind] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
            computed = {kind: sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
                        for kind, rows in _computed(store, tenant, r["resourceType"], content).items()}
            stored["numbers"] = [row for row in stored["numbers"] if row[0] not in derived_params]
            if stored != computed:
                raise SystemExit(f"index rows of {r['resourceType']}/{r['id']} differ:\n{stored}\n{computed}")
            checked += 1
    return checked


def _computed(store: Store, tenant: str, rtype: str, content: str) -> dict[str, list[tuple[Any, ...]]]:
    idx = store.for_tenant(tenant).index_values(rtype, orjson.loads(content))
    return {kind: list(getattr(idx, kind)) for kind in INDEX_TABLES}


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return str(value)


# -- measuring ----------------------------------------------------------------------------------

@contextmanager
def serving(args: list[str], env: dict[str, str], health: str, seconds: float = 300) -> Iterator[None]:
    """The server process, up (loading the demo and analyzing 100,000 claims on a busy machine
    takes longer than ``bench.core`` waits)."""
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx.get(health, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{health} did not come up")
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def explain_ms(store: Store, tenant: str, rtype: str, query: str) -> tuple[float, int]:
    """The database's time for the search's page statement (the server's SQL), and its rows."""
    reg = registry()
    q = parse_search(reg.get(rtype), parse_qsl(query), registry=reg)
    expr, desc, _, source = sort_plan(q, tenant)
    sort_col = (expr if expr is not None else RES.c.pk).label("sortkey")
    stmt = (sa.select(RES.c.pk, RES.c.id, RES.c.content, sort_col).select_from(source)
            .where(*query_conditions(tenant, q))
            .order_by(sort_col.desc() if desc else sort_col.asc(), RES.c.pk.desc() if desc else RES.c.pk.asc())
            .limit(q.count + 1))
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        plan = conn.execute(sa.text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar_one()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return round(plan[0]["Execution Time"], 1), int(plan[0]["Plan"]["Actual Rows"])


def timed(client: httpx.Client, url: str, repeat: int) -> dict[str, Any]:
    for _ in range(2):
        client.get(url).raise_for_status()
    ms = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        ms.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
    ms.sort()
    body = r.json()
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[max(0, int(len(ms) * 0.95) - 1)], 1),
            "bytes": size, "entries": len(body.get("entry", [])) if body.get("resourceType") == "Bundle" else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--eob-share", type=float, default=0.4, help="share of the answered claims with an EOB")
    parser.add_argument("--sample", type=int, default=200, help="of each kind, written through the store")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=PG_BENCH)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("this bench measures PostgreSQL")
    print(json.dumps({"bench": "worklists", **machine()}), flush=True)
    rng = random.Random(7)
    today = datetime.now(timezone.utc).date()
    settings = Settings(database_url=args.database_url, embedded_worker=False)
    tenant = DEMO_TENANT  # the tenant of the demo server's Backend Services client
    _reset(args.database_url)
    engine = make_engine(args.database_url)
    upgrade(engine)
    store = build_store(settings, engine)
    store.ensure_tenant(tenant)

    t0 = time.perf_counter()
    claim_list = claims(args.claims, today, rng)
    eob_list = eobs(claim_list, args.eob_share, rng)
    task_list = tasks(args.tasks, today, rng)
    built_s = time.perf_counter() - t0
    samples = [claim_list[:args.sample], eob_list[:args.sample], task_list[:args.sample]]
    t0 = time.perf_counter()
    for sample in samples:
        write_sample(store, tenant, sample)
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    now = datetime.now(timezone.utc)
    copy_bulk(store, tenant, claim_list[args.sample:] + eob_list[args.sample:] + task_list[args.sample:], now)
    copy_s = time.perf_counter() - t0
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM job"))  # what the sample's writes queued is not measured
    t0 = time.perf_counter()
    with store.for_tenant(tenant).unit() as unit:  # the claim facts of the COPYed resources, as upgrading makes them
        facts.rebuild(unit)
    facts_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.analyze()
    analyze_s = time.perf_counter() - t0
    checked = verify_sample(store, tenant, [r for s in samples for r in s])
    derived_checked = verify_derived(store, tenant)
    with store.engine.connect() as conn:
        counts = dict(conn.execute(sa.text("SELECT type, count(*) FROM resource WHERE tenant_id = :t GROUP BY type"),
                                   {"t": tenant}).all())
        index_rows = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t, _ in INDEX_TABLES.values()}
    print(json.dumps({"load": {"claims": counts.get("Claim"), "eobs": counts.get("ExplanationOfBenefit"),
                               "tasks": counts.get("Task"), "index_rows": index_rows, "build_s": round(built_s, 1),
                               "sample_written_s": round(sample_s, 1), "copy_s": round(copy_s, 1), "facts_rebuild_s": round(facts_s, 1),
                               "analyze_s": round(analyze_s, 1),
                               "sample_rows_identical_to_real_writes": checked,
                               "claims_outstanding_checked": derived_checked}}), flush=True)

    old = (today - timedelta(days=90)).isoformat()
    searches = {
        "ar_aging": ("Claim", None, "/Claim/$ar-aging"),
        "ar_aging_summary": ("Claim", None, "/Claim/$ar-aging?detail=summary"),
        "worklist_page": ("Task", "status=requested&category=coding&_sort=-priority-score&_count=50", None),
        "claims_by_outstanding": ("Claim", "outstanding=gt0&_sort=-outstanding&_count=50", None),
        "claims_payer_by_outstanding": ("Claim", "insurer=Organization/payer-3&outstanding=gt100&_sort=-outstanding&_count=50", None),
        "claims_by_billed": ("Claim", "_sort=-billed&_count=50", None),
        "claims_old_by_service_date": ("Claim", f"lifecycle=submitted,acknowledged&service-date=lt{old}&_sort=service-date&_count=50", None),
        "claims_by_submitted": ("Claim", "_sort=submitted&submitted=lt" + old + "&_count=50", None),
        "claims_by_payer": ("Claim", "lifecycle=denied&_sort=insurer&_count=50", None),
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="tb-worklists-") as var:
        env = {**os.environ, "THERABRIDGE_DATABASE_URL": args.database_url, "THERABRIDGE_PUBLIC_URL": base,
               "THERABRIDGE_LOG_LEVEL": "warning", "THERABRIDGE_VAR_DIR": var, "THERABRIDGE_EMBEDDED_WORKER": "false"}
        from app.auth.get_token import request_token
        with serving([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1", "--demo"], env,
                     base + "/healthz"):
            token = request_token(Path(var) / "demo-backend-key.json")["access_token"]
            client = httpx.Client(base_url=base + "/fhir", headers={"Authorization": f"Bearer {token}"}, timeout=120)
            for name, (rtype, query, path) in searches.items():
                row: dict[str, Any] = {"search": name, "url": path or f"/{rtype}?{query}"}
                row.update(timed(client, path or f"/{rtype}?{query}", args.repeat))
                if query is not None:
                    row["db_ms"], row["db_rows"] = explain_ms(store, tenant, rtype, query)
                print(json.dumps(row), flush=True)
    print(json.dumps({"done": True, **machine()}), flush=True)
    store.engine.dispose()


if __name__ == "__main__":
    main()
