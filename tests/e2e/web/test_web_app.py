"""The practice web app in a real browser (Chromium) against a real ``therabridge serve --demo``:
sign in through the server's login page (code + PKCE), the dashboard against $evaluate-measure,
a held claim fixed, regenerated, submitted and paid by the sandbox payer, a denial worked, the
layout at 1280 and 768 pixels, readable refusals, and sign-out. One browser and one server for
the module; the tests run in order and share the signed-in browser. Screenshots of each screen
go to ``var/screenshots/`` (see ``browser.screenshot_dir``)."""
from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from app.auth import admin, practice_app
from app.db import make_engine
from tests.e2e.web.browser import (
    NARROW, WIDE, DemoServer, local_storage, screenshot_dir, session_storage, settled, sign_in, wait_for,
)

pytestmark = pytest.mark.slow

MEASURES = ["clean-claim-rate", "first-pass-yield", "denial-rate", "days-in-ar", "aged-ar-over-90",
            "net-collection-rate", "days-to-payment", "eligibility-verification-rate", "authorization-rate"]


@pytest.fixture(scope="module")
def shots() -> Any:
    folder = screenshot_dir()

    def take(driver: Any, name: str) -> None:
        driver.save_screenshot(str(folder / f"{name}.png"))
    return take


def text(driver: Any) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def go(driver: Any, server: DemoServer, route: str) -> None:
    driver.get(f"{server.base}/app/#{route}")


def test_the_app_is_registered_for_every_practice(server: DemoServer) -> None:
    engine = make_engine(server.database_url)
    admin.create_tenant(engine, "second-practice", public_url=server.base)
    clients = practice_app.ensure_all(engine, server.base)  # again at start-up: nothing new
    assert practice_app.client_id_for("demo") in clients
    assert practice_app.client_id_for("second-practice") in clients
    engine.dispose()


def test_sign_in_through_the_login_page(server: DemoServer, browser: Any, shots: Any) -> None:
    sign_in(browser, server, "demo-biller", server.password)
    assert "code=" not in browser.current_url and "state=" not in browser.current_url
    assert browser.current_url.endswith("/app/#/dashboard")
    stored = session_storage(browser)
    assert "tb.session" in stored and "tb.pending" not in stored
    assert not any("accessToken" in v for v in local_storage(browser).values())  # the token stays in this tab
    assert "demo-biller" in text(browser)


def _tile_text(quantity: dict[str, Any]) -> str | None:
    """What a tile shows for a score, when the test can say it exactly (percentages, no data)."""
    score = quantity.get("value")
    if score is None:
        return "no data"
    if quantity.get("code") == "1":
        return f"{score * 100:,.1f}".removesuffix(".0") + "%"
    return None


def _dashboard_mismatches(server: DemoServer, browser: Any, start: str, end: str) -> list[str]:
    """Show the period again, then compare every tile with what $evaluate-measure answers now."""
    browser.find_element(By.CSS_SELECTOR, "form.period button").click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".tile :is(.score, .error)")) == len(MEASURES),
             what="every tile computed")
    wrong = []
    with server.api() as api:
        for measure in MEASURES:
            answer = api.get(f"/Measure/{measure}/$evaluate-measure", params={"periodStart": start, "periodEnd": end})
            tile = browser.find_element(By.CSS_SELECTOR, f'.tile[data-measure="{measure}"] :is(.score, .error)')
            if answer.status_code != 200:  # the server cannot evaluate it: the tile says why, in its words
                issue = answer.json()["issue"][0]
                if (issue.get("diagnostics") or issue["details"]["text"]) not in tile.text:
                    wrong.append(f"{measure}: {tile.text!r} for {issue}")
                continue
            quantity = answer.json()["group"][0].get("measureScore", {})
            shown, expected = tile.get_attribute("data-score"), quantity.get("value")
            same = shown == "" if expected is None else (shown != "" and float(shown) == float(expected))
            if not same or (_tile_text(quantity) is not None and tile.text != _tile_text(quantity)):
                wrong.append(f"{measure}: tile {shown!r} {tile.text!r}, server {quantity}")
    return wrong


def test_dashboard_figures_are_evaluate_measures(server: DemoServer, browser: Any, shots: Any) -> None:
    settled(server)
    start, end = (date.today() - timedelta(days=89)).isoformat(), date.today().isoformat()
    go(browser, server, f"/dashboard?start={start}&end={end}")
    for attempt in range(10):  # background jobs may still be recording the last answers: compare a still picture
        mismatches = _dashboard_mismatches(server, browser, start, end)
        if not mismatches:
            break
        time.sleep(2)
    assert not mismatches
    shots(browser, "dashboard")

    # a tile drills down to the claims behind it and its strata
    with server.api() as api:
        report = api.get("/Measure/denial-rate/$evaluate-measure",
                         params={"periodStart": start, "periodEnd": end, "reportType": "subject-list"}).json()
    listed = {e["item"]["reference"].split("/")[1] for c in report.get("contained", []) for e in c.get("entry", [])}
    browser.find_element(By.CSS_SELECTOR, '.tile[data-measure="denial-rate"] a').click()
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "table.claims"), what="the claims behind the denial rate")
    shown = {a.get_attribute("href").rsplit("/", 1)[1] for a in browser.find_elements(By.CSS_SELECTOR, "table.claims a")}
    assert shown == listed and listed
    assert "By payer" in text(browser)
    shots(browser, "dashboard-drill")


def test_trend_from_the_weekly_reports(server: DemoServer, browser: Any, shots: Any) -> None:
    today = date.today()
    for day in (today - timedelta(days=7), today):
        year, week, _ = day.isocalendar()
        server.cli("measures", "weekly", "--tenant", "demo", "--week", f"{year}-W{week:02d}")
    with server.api() as api:
        url = api.get("/Measure/denial-rate").json()["url"]
        stored = [e["resource"] for e in api.get("/MeasureReport", params={"measure": url, "_sort": "period"}).json()["entry"]]
    assert len(stored) == 2
    go(browser, server, "/dashboard")
    browser.refresh()
    Select(wait_for(lambda: browser.find_element(By.ID, "trend-measure"), what="the trend")).select_by_value("denial-rate")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".trend canvas"), what="the trend chart")
    browser.find_element(By.CSS_SELECTOR, ".trend details summary").click()
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, ".trend tbody tr")]
    expected = [f"{r['period']['end']} " + (_tile_text(r["group"][0].get("measureScore", {})) or "") for r in stored]
    assert rows == expected
    drawn = browser.execute_script("return Chart.getChart(document.querySelector('.trend canvas')).data.datasets[0].data")
    assert drawn == [None if r["group"][0].get("measureScore") is None else r["group"][0]["measureScore"]["value"] * 100
                     for r in stored]
    shots(browser, "dashboard-trend")


def test_a_bad_period_is_explained(server: DemoServer, browser: Any) -> None:
    go(browser, server, "/dashboard?start=2026-05-01&end=2026-04-01")
    alert = wait_for(lambda: browser.find_element(By.ID, "period-error"), what="the period error")
    assert "ends before it starts" in alert.text and alert.get_attribute("role") == "alert"


def test_an_unknown_measure_is_explained(server: DemoServer, browser: Any) -> None:
    go(browser, server, "/measure/no-such-measure/2026-01-01/2026-01-31")
    alert = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "main .error[role=alert]"), what="the refusal")
    assert alert.text.startswith("Not found.") and "no-such-measure" in alert.text


def test_held_claim_fixed_regenerated_submitted_and_paid(server: DemoServer, browser: Any, shots: Any) -> None:
    go(browser, server, "/worklists/held")
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "table.held tbody tr"), what="a held claim")
    claim_id = row.get_attribute("data-claim")
    edit = row.find_element(By.CSS_SELECTOR, '.edit[data-rule="PRIOR-AUTH-MISSING"]')
    assert "authorization" in edit.text and "Claim.insurance[0].preAuthRef" in edit.text  # text and FHIRPath
    shots(browser, "worklist-held")

    # the cause: no authorization on file. The biller records the payer's on the patient page.
    row.find_element(By.PARTIAL_LINK_TEXT, "Kim").click()
    wait_for(lambda: "Coverages" in text(browser), what="the patient page")
    browser.find_element(By.CSS_SELECTOR, "details.record-auth summary").click()
    browser.find_element(By.ID, "auth-ref").send_keys("WC-AUTH-7781")
    start = browser.find_element(By.ID, "auth-start")
    browser.execute_script("arguments[0].value = '2026-01-01'; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", start)
    browser.find_element(By.CSS_SELECTOR, "form.grid button[type=submit]").click()
    wait_for(lambda: "WC-AUTH-7781" in browser.find_element(By.CSS_SELECTOR, "table.auths").text, what="the authorization listed")
    usage = browser.find_element(By.CSS_SELECTOR, 'tr[data-auth="WC-AUTH-7781"]').text
    assert "OT" in usage and "12" in usage  # authorized 12 visits, from $usage
    with server.api() as api:  # the balance is $balance's
        balance = next(p for p in api.post("/Patient/pat-kim/$balance").json()["parameter"] if p["name"] == "balance")
    assert browser.find_element(By.CSS_SELECTOR, 'dd[data-balance="balance"]').text == f"${balance['valueMoney']['value']:,.2f}"
    shots(browser, "patient")

    go(browser, server, f"/claims/{claim_id}")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '.facts dd[data-lifecycle="draft"]'), what="the held claim")
    assert "PRIOR-AUTH-MISSING" in text(browser)
    browser.find_element(By.XPATH, "//button[normalize-space()='Regenerate claim']").click()
    done = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".actions .done").text, what="the regeneration")
    assert "Regenerated" in done
    wait_for(lambda: "No edits" in browser.find_element(By.CSS_SELECTOR, ".claim-edits").text, what="the edit gone")
    browser.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".actions .done, .actions .error"), what="the submission")
    assert browser.find_elements(By.CSS_SELECTOR, ".actions .done"), text(browser)

    def paid() -> bool:  # the sandbox payer answers within seconds; the page shows it on reload
        browser.refresh()
        state = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".facts dd[data-lifecycle]"), what="the status")
        return state.get_attribute("data-lifecycle") in ("paid", "partially-paid")
    wait_for(paid, timeout=120, what="the sandbox payer's payment")
    page = text(browser)
    assert "What the payer paid" in page  # the payer's answer, line by line
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "Queued" in timeline and "Sent" in timeline and "Paid" in timeline
    with server.api() as api:
        claim = api.get(f"/Claim/{claim_id}").json()
        assert claim["insurance"][0].get("preAuthRef") == ["WC-AUTH-7781"]
    shots(browser, "claim-paid")


def test_denial_worked_from_the_worklist(server: DemoServer, browser: Any, shots: Any) -> None:
    go(browser, server, "/worklists/denials")
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'table.tasks tr[data-code="denial"]'), what="a denial")
    task_id = row.get_attribute("data-task")
    assert "benefit-limit" in Select(browser.find_element(By.ID, "denial-category")).options[1].text
    row.find_element(By.CSS_SELECTOR, "details.work summary").click()
    row.find_element(By.XPATH, ".//button[normalize-space()='Assign to me']").click()
    wait_for(lambda: "Assigned to you" in browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"]').text
             and "demo-biller" in browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"] td.owner').text,
             what="the assignment, reloaded")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"]')
    if not row.find_element(By.CSS_SELECTOR, "details.work").get_attribute("open"):
        row.find_element(By.CSS_SELECTOR, "details.work summary").click()
    row.find_element(By.ID, f"task-{task_id}-note").send_keys("Called the payer: visit limit confirmed")
    row.find_element(By.XPATH, ".//button[normalize-space()='Add note']").click()
    wait_for(lambda: "Called the payer" in browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"] .notes').text,
             what="the note")
    with server.api() as api:
        task = api.get(f"/Task/{task_id}").json()
    assert task["owner"]["display"] == "demo-biller" and task["status"] == "in-progress"
    assert task["note"][-1]["text"] == "Called the payer: visit limit confirmed"
    shots(browser, "worklist-denials")

    # the denied claim: appeal it; the server writes the letter and the denial Task follows the appeal
    claim_id = task["focus"]["reference"].split("/")[1]
    go(browser, server, f"/claims/{claim_id}")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '.facts dd[data-lifecycle="denied"]'), what="the denied claim")
    assert "CO-119" in text(browser)  # the EOB's adjustment
    browser.find_element(By.XPATH, "//button[normalize-space()='Appeal']").click()
    outcome = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".actions .done, .actions .error"), what="the appeal")
    assert "Appeal letter ready" in outcome.text, outcome.text
    letter = browser.find_element(By.CSS_SELECTOR, ".actions .letter a[download]")
    assert letter.get_attribute("download").endswith(".pdf") and letter.get_attribute("href").startswith("blob:")
    with server.api() as api:
        task = api.get(f"/Task/{task_id}").json()
    assert task["businessStatus"]["text"] == "appealed"
    letters = [o["valueReference"]["reference"] for o in task.get("output", []) if o["type"].get("text") == "appeal-letter"
               or any(c.get("code") == "appeal-letter" for c in o["type"].get("coding", []))]
    assert letters and letters[0].startswith("DocumentReference/")
    wait_for(lambda: "Download appeal-letter" in browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{task_id}"]').text,
             what="the letter on the claim's work item")
    shots(browser, "claim-appealed")

    # a second appeal while the first is pending is refused, in words
    browser.find_element(By.XPATH, "//button[normalize-space()='Appeal']").click()
    refusal = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".actions .error"), what="the second appeal refused")
    assert refusal.get_attribute("role") == "alert" and refusal.text.startswith("This conflicts with what is already recorded.")
    assert len(refusal.text) > len("This conflicts with what is already recorded.") + 10  # and the server's reason


def test_closing_an_item(server: DemoServer, browser: Any) -> None:
    go(browser, server, "/worklists/authorizations")
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, 'tr[data-code="visit-limit-low"]'), what="a visit-limit item")
    assert "Coverage/cov-maxwell" in row.text
    task_id = row.get_attribute("data-task")
    row.find_element(By.CSS_SELECTOR, "details.work summary").click()
    Select(row.find_element(By.ID, f"task-{task_id}-reason")).select_by_value("resolved")
    row.find_element(By.XPATH, ".//button[normalize-space()='Close item']").click()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, f'tr[data-task="{task_id}"]'), what="the item closed")
    with server.api() as api:
        task = api.get(f"/Task/{task_id}").json()
    assert task["status"] == "completed" and task["businessStatus"]["text"] == "resolved"
    assert task["executionPeriod"]["end"][:10] == date.today().isoformat()


def test_other_worklists_and_aging(server: DemoServer, browser: Any, shots: Any) -> None:
    go(browser, server, "/worklists/aging")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "table.aging tr.total"), what="the aging report")
    shots(browser, "worklist-aging")
    go(browser, server, "/worklists/authorizations")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "table.tasks, p.empty"), what="the authorizations list")
    shots(browser, "worklist-authorizations")
    for tab in ("timely-filing", "failed-jobs", "open"):
        go(browser, server, f"/worklists/{tab}")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "table.tasks, p.empty"), what=f"the {tab} list")
        assert not browser.find_elements(By.CSS_SELECTOR, "main .error")


def test_readable_at_768_pixels(server: DemoServer, browser: Any, shots: Any) -> None:
    browser.set_window_size(NARROW, 900)
    try:
        for route, name in (("/dashboard", "dashboard-768"), ("/claims", "claims-768"), ("/patients/pat-kim", "patient-768"),
                            ("/worklists/open", "worklist-open-768")):
            go(browser, server, route)
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".tile, table.claims, table.tasks"), what=route)
            width = browser.execute_script("return document.documentElement.scrollWidth")
            inner = browser.execute_script("return window.innerWidth")
            assert width <= inner, f"{route} scrolls sideways at {NARROW}px ({width} > {inner})"
            shots(browser, name)
        nav = browser.find_element(By.CSS_SELECTOR, "header.top nav")
        assert nav.is_displayed() and "Worklists" in nav.text
    finally:
        browser.set_window_size(WIDE, 900)


def test_keyboard_reaches_the_navigation(server: DemoServer, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    go(browser, server, "/dashboard")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".tile"), what="the dashboard")
    from selenium.webdriver.common.action_chains import ActionChains

    browser.refresh()  # a fresh page: keyboard focus starts at the top
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".tile"), what="the dashboard")
    seen = []
    for _ in range(7):  # from the top: skip link, the four screens, sign out
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        seen.append(focused.text or focused.get_attribute("id"))
    assert "Worklists" in seen and "Sign out" in seen
    link = next(el for el in browser.find_elements(By.CSS_SELECTOR, "header nav a") if el.text == "Worklists")
    link.send_keys(Keys.ENTER)
    wait_for(lambda: "#/worklists" in browser.current_url, what="navigation by keyboard")


def test_sign_out_revokes_the_token(server: DemoServer, browser: Any) -> None:
    token = __import__("json").loads(session_storage(browser)["tb.session"])["accessToken"]
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait_for(lambda: browser.find_element(By.ID, "practice"), what="the sign-in form")
    assert "tb.session" not in session_storage(browser)
    import httpx

    time.sleep(1.5)  # revocations reach every process within a poll
    answer = httpx.get(server.base + "/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_forbidden_is_explained(server: DemoServer, browser: Any, shots: Any) -> None:
    engine = make_engine(server.database_url)
    admin.create_user(engine, tenant="demo", username="demo-auditor", password="a long auditor passphrase", role="auditor")
    engine.dispose()
    sign_in(browser, server, "demo-auditor", "a long auditor passphrase")
    go(browser, server, "/worklists/held")
    alert = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "main .error[role=alert]"), what="the refusal")
    assert "not allowed" in alert.text
    shots(browser, "forbidden")
