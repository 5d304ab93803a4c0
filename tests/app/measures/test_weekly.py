"""Weekly KPI reports: stored MeasureReports equal a fresh $evaluate-measure of the week, a rerun
changes nothing, trends are a search, the PDF summary shows the figures, the weekly job queues
itself, and the ``measures weekly`` command runs a week on demand."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pypdf

from app.measures import definitions, weekly
from app.measures.weekly_pdf import KpiLine, change, figure
from tests.app.measures.test_evaluate_measure import store_scenario
from app.outbox import J
from tests.flows import drain, jobs, make_due

W25, W26 = "2026-W25", "2026-W26"  # 2026-06-15..21 and 2026-06-22..28
ROOT = Path(__file__).resolve().parents[3]


def run_week(store: Any, tenant: str, week: str) -> weekly.WeekResult:
    with store.for_tenant(tenant).unit() as unit:
        return weekly.run_week(unit, week)


def without_volatile(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("id", "meta", "date")}


async def test_stored_reports_equal_a_fresh_evaluation_and_a_rerun_changes_nothing(api, store, tenant) -> None:
    store_scenario(store, tenant)
    first = run_week(store, tenant, W26)
    assert first.start.isoformat() == "2026-06-22" and first.end.isoformat() == "2026-06-28"
    assert set(first.reports) == set(definitions.ids()) and len(first.written) == len(definitions.ids()) + 1
    for mid, rid in first.reports.items():
        assert rid == weekly.report_id(tenant, mid, W26)
        stored = (await api.get(f"/fhir/MeasureReport/{rid}")).json()
        fresh = await api.get(f"/fhir/Measure/{mid}/$evaluate-measure?periodStart=2026-06-22&periodEnd=2026-06-28")
        assert fresh.status_code == 200, fresh.text
        assert without_volatile(stored) == without_volatile(fresh.json()), mid
        assert stored["period"] == {"start": "2026-06-22", "end": "2026-06-28"} and stored["type"] == "summary"
    denial = (await api.get(f"/fhir/MeasureReport/{first.reports['denial-rate']}")).json()
    assert denial["group"][0]["measureScore"]["value"] > 0  # D was denied on 06-28

    again = run_week(store, tenant, W26)
    assert again.written == [] and again.reports == first.reports and again.document == first.document
    history = (await api.get(f"/fhir/MeasureReport/{first.reports['denial-rate']}/_history")).json()
    assert len(history["entry"]) == 1, history
    doc_history = (await api.get(f"/fhir/DocumentReference/{first.document}/_history")).json()
    assert len(doc_history["entry"]) == 1


async def test_trend_is_a_search_over_stored_reports(api, store, tenant) -> None:
    store_scenario(store, tenant)
    run_week(store, tenant, W26)
    run_week(store, tenant, W25)
    canonical = definitions.canonical("denial-rate")
    r = await api.get(f"/fhir/MeasureReport?measure={canonical}&period=ge2026-06-01&_sort=period")
    assert r.status_code == 200, r.text
    periods = [e["resource"]["period"]["start"] for e in r.json()["entry"]]
    assert periods == ["2026-06-15", "2026-06-22"]
    versioned = await api.get(f"/fhir/MeasureReport?measure={canonical}|{definitions.data()['version']}"
                              "&period=ge2026-06-22")
    assert [e["resource"]["period"]["start"] for e in versioned.json()["entry"]] == ["2026-06-22"]
    assert (await api.get(f"/fhir/MeasureReport?measure={canonical}|0.0.1")).json()["total"] == 0
    other = await api.get("/fhir/MeasureReport?measure=" + definitions.canonical("days-in-ar"))
    assert {e["resource"]["measure"].split("|")[0] for e in other.json()["entry"]} == {definitions.canonical("days-in-ar")}


async def test_clients_cannot_write_measure_reports(api, store, tenant) -> None:
    store_scenario(store, tenant)
    rid = run_week(store, tenant, W26).reports["clean-claim-rate"]
    report = (await api.get(f"/fhir/MeasureReport/{rid}")).json()
    report["group"][0]["measureScore"] = {"value": 1.0}
    r = await api.put(f"/fhir/MeasureReport/{rid}", json=report)
    assert r.status_code == 422 and r.json()["resourceType"] == "OperationOutcome"
    assert (await api.post("/fhir/MeasureReport", json=report)).status_code == 405
    assert (await api.delete(f"/fhir/MeasureReport/{rid}")).status_code == 405


def pdf_text(document: dict[str, Any]) -> str:
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    body = base64.b64decode(attachment["data"])
    return "\n".join(page.extract_text(extraction_mode="layout") for page in pypdf.PdfReader(io.BytesIO(body)).pages)


async def test_pdf_summary_has_the_figures_and_the_change(api, store, tenant) -> None:
    store_scenario(store, tenant)
    previous = run_week(store, tenant, W25)
    result = run_week(store, tenant, W26)
    document = (await api.get(f"/fhir/DocumentReference/{result.document}")).json()
    assert document["type"]["coding"][0]["code"] == "weekly-kpi-summary"
    assert document["context"]["period"] == {"start": "2026-06-22", "end": "2026-06-28"}
    assert {r["reference"] for r in document["context"]["related"]} == \
        {f"MeasureReport/{rid}" for rid in result.reports.values()}
    text = pdf_text(document)
    assert "Week 2026-W26: 2026-06-22 to 2026-06-28" in text
    rows = {cols[0]: cols[1:] for cols in (re.split(r"\s{2,}", t.strip()) for t in text.splitlines()) if cols}
    for mid in definitions.ids():
        spec, measure = definitions.spec(mid), definitions.measure(mid)
        now = (await api.get(f"/fhir/MeasureReport/{result.reports[mid]}")).json()
        before = (await api.get(f"/fhir/MeasureReport/{previous.reports[mid]}")).json()
        line = KpiLine(spec["title"], spec["unit"], now["group"][0].get("measureScore", {}).get("value"),
                       before["group"][0].get("measureScore", {}).get("value"),
                       measure["improvementNotation"]["coding"][0]["code"])
        delta, verdict = change(line)
        assert rows[spec["title"]] == [figure(line.value, line.unit), figure(line.previous, line.unit), delta,
                                       *([verdict] if verdict else [])], mid
    # by hand: W25 adjudicated A (paid in full); W26 B (a line denied) and D (denied)
    assert rows["Denial rate"] == ["100.0 %", "0.0 %", "+100.0 pts", "worse"]


async def test_weekly_job_is_queued_by_a_new_claim_and_queues_the_next_week(store, tenant) -> None:
    store_scenario(store, tenant)
    queued = jobs(store, tenant, weekly.JOB)
    assert len(queued) == 1
    week = json.loads(queued[0].payload)["week"]
    start, end = weekly.parse_week(week)
    assert queued[0].run_after.date() == end + timedelta(days=1)  # the Monday after the week
    make_due(store, tenant)
    drain(store)
    after = jobs(store, tenant, weekly.JOB)
    assert [r.status for r in after] == ["done", "queued"]
    assert json.loads(after[1].payload)["week"] == weekly.week_of(end + timedelta(days=1))
    with store.for_tenant(tenant).reading() as reader:
        for mid in definitions.ids():
            assert reader.current("MeasureReport", weekly.report_id(tenant, mid, week)) is not None


def test_start_up_queues_the_week_for_practices_with_claims(store, tenant) -> None:
    store_scenario(store, tenant)
    with store.engine.begin() as conn:
        conn.execute(J.delete().where(J.c.tenant_id == tenant, J.c.kind == weekly.JOB))
    assert weekly.ensure_schedules(store) >= 1
    assert weekly.ensure_schedules(store) >= 1  # a week already queued is not queued again
    [job] = jobs(store, tenant, weekly.JOB)
    with store.for_tenant(tenant).reading() as reader:
        assert json.loads(job.payload)["week"] == weekly.week_of(reader.ts.store.clock().date())


def test_measures_weekly_command(database_url: str, store, tenant) -> None:
    store_scenario(store, tenant)
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url}
    cmd = [str(Path(sys.executable).parent / "therabridge"), "measures", "weekly", "--tenant", tenant]
    out = subprocess.run([*cmd, "--week", W26], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["start"] == "2026-06-22" and len(printed["written"]) == len(definitions.ids()) + 1
    again = subprocess.run([*cmd, "--week", W26], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert json.loads(again.stdout)["written"] == []
    bad = subprocess.run([*cmd, "--week", "2026-26"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "ISO week" in bad.stderr


async def test_capability_statement_describes_measure_reports(api) -> None:
    cap = (await api.get("/fhir/metadata")).json()
    [entry] = [e for e in cap["rest"][0]["resource"] if e["type"] == "MeasureReport"]
    assert [i["code"] for i in entry["interaction"]] == ["read", "vread", "update", "history-instance", "search-type"]
    assert "422" in entry["documentation"]
    params = {p["name"]: p["type"] for p in entry["searchParam"]}
    assert params["measure"] == "token" and params["period"] == "date"
