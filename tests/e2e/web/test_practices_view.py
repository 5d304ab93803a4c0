"""A billing company's person granted two practices, in a real browser against ``therabridge
serve --demo``: the header names the practice, the switcher changes it with the refresh grant
(no password again), and "All my practices" shows every KPI combined exactly as
``app.measures.combine`` combines the two practices' own ``$evaluate-measure`` answers, each
practice's figure beside it. A person with one practice sees neither. The tests run in order and
share the signed-in browser."""
from __future__ import annotations

import copy
import json
import time
from datetime import date
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from app.auth import admin
from app.bootstrap import build_store
from app.db import make_engine
from app.measures.combine import combine
from app.measures.evaluate import evaluate
from app.settings import Settings
from tests.app.measures.test_evaluate_measure import store_scenario
from tests.e2e.web.browser import (
    NARROW, WIDE, DemoServer, screenshot_dir, session_storage, settled, sign_in, wait_for,
)

pytestmark = pytest.mark.slow

SECOND = "second-rehab"
MEASURES = ["clean-claim-rate", "first-pass-yield", "denial-rate", "days-in-ar", "aged-ar-over-90",
            "net-collection-rate", "days-to-payment", "eligibility-verification-rate", "authorization-rate"]
START, END = "2026-06-01", date.today().isoformat()  # the second practice's June claims and the demo's recent ones


@pytest.fixture(scope="module")
def second(server: DemoServer) -> Any:
    """The second practice with June's claims, remittances and eligibility answer; the demo biller
    granted it (as an operator does, with the CLI). Its store evaluates its reports."""
    server.cli("tenants", "create", SECOND, "--name", "Second Rehab")
    server.cli("users", "grant", "--tenant", "demo", "--username", "demo-biller", "--practice", SECOND)
    engine = make_engine(server.database_url)
    store = build_store(Settings(database_url=server.database_url, public_url=server.base), engine)
    store_scenario(store, SECOND)
    yield store
    engine.dispose()


def reports(server: DemoServer, store: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Each practice's own answer for every KPI: the demo's through its API, the second's from its store."""
    out: dict[str, dict[str, dict[str, Any]]] = {"demo": {}, SECOND: {}}
    with server.api() as api:
        for measure in MEASURES:
            answer = api.get(f"/Measure/{measure}/$evaluate-measure", params={"periodStart": START, "periodEnd": END})
            assert answer.status_code == 200, answer.text
            out["demo"][measure] = answer.json()
    with store.for_tenant(SECOND).reading() as reader:
        for measure in MEASURES:
            out[SECOND][measure] = json.loads(json.dumps(
                evaluate(reader, measure, date.fromisoformat(START), date.fromisoformat(END)), default=float))
    return out


def tiles(browser: Any) -> dict[str, Any]:
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".tiles.combined .tile .score")) == len(MEASURES),
             timeout=60, what="every combined tile")
    return {m: browser.find_element(By.CSS_SELECTOR, f'.tile[data-measure="{m}"]') for m in MEASURES}


def session(browser: Any) -> dict[str, Any]:
    return json.loads(session_storage(browser)["tb.session"])


def test_the_header_names_the_practice_and_offers_the_others(server: DemoServer, browser: Any, second: Any) -> None:
    sign_in(browser, server, "demo-biller", server.password)
    assert browser.find_element(By.ID, "current-practice").get_attribute("data-practice") == "demo"
    options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "practice-switch")).options]
    assert options == ["demo", SECOND]
    assert browser.find_element(By.LINK_TEXT, "All my practices")
    stored = session(browser)
    assert stored["practice"] == "demo" and stored["refreshToken"]
    browser.set_window_size(NARROW, 900)
    try:
        assert browser.find_element(By.ID, "practice-switch").is_displayed()
        browser.save_screenshot(str(screenshot_dir() / "practices-narrow.png"))
    finally:
        browser.set_window_size(WIDE, 900)


def test_combined_figures_are_combine_of_each_practice(server: DemoServer, browser: Any, second: Any) -> None:
    settled(server)
    own = reports(server, second)
    assert own[SECOND]["denial-rate"]["group"][0]["population"][1]["count"] > 0  # the second practice has claims
    browser.get(f"{server.base}/app/#/combined?start={START}&end={END}")
    shown = tiles(browser)
    for measure in MEASURES:
        expected = combine([own["demo"][measure], own[SECOND][measure]])
        tile = shown[measure]
        score = tile.find_element(By.CSS_SELECTOR, ".score")
        if measure == "days-to-payment":  # medians do not combine
            assert "measureScore" not in expected["group"][0] and score.text == "per practice only"
        else:
            want = expected["group"][0].get("measureScore", {}).get("value")
            assert score.get_attribute("data-score") == ("" if want is None else _js(want)), measure
        for practice in ("demo", SECOND):
            item = tile.find_element(By.CSS_SELECTOR, f'li[data-practice="{practice}"]')
            value = own[practice][measure]["group"][0].get("measureScore", {}).get("value")
            assert item.get_attribute("data-score") == ("" if value is None else _js(value)), (measure, practice)
    browser.save_screenshot(str(screenshot_dir() / "combined.png"))
    # the session's own token is still the demo practice's: the others' stayed in memory, unstored
    stored = session(browser)
    assert stored["practice"] == "demo"
    assert claim_count(server, stored["accessToken"]) == claim_count(server, None)
    assert not any(SECOND in v for k, v in session_storage(browser).items() if k != "tb.session")


def _with(report: dict[str, Any], counts: dict[str, int], cents: dict[str, int] | None = None) -> dict[str, Any]:
    """``report`` with its first group's populations set to ``counts`` (and amounts in cents)."""
    out = copy.deepcopy(report)
    for pop in out["group"][0]["population"]:
        code = pop["code"]["coding"][0]["code"]
        pop["count"] = counts.get(code, 0)
        for ext in pop.get("extension", []):
            ext["valueMoney"]["value"] = (cents or {}).get(code, 0) / 100
    return out


def test_the_browser_combines_like_the_server_at_the_rounding_edges(server: DemoServer, browser: Any,
                                                                    second: Any) -> None:
    """Ties at the last place (half to even), amounts in cents and days: the app's combine equals combine()."""
    own = reports(server, second)
    cases = [
        [_with(own["demo"]["denial-rate"], {"initial-population": 20, "denominator": 20, "numerator": 1}),
         _with(own[SECOND]["denial-rate"], {"initial-population": 12, "denominator": 12, "numerator": 0})],  # 1/32
        [_with(own["demo"]["denial-rate"], {"initial-population": 3, "denominator": 3, "numerator": 1}),
         _with(own[SECOND]["denial-rate"], {"initial-population": 13, "denominator": 13, "numerator": 2})],  # 3/16
        [_with(own["demo"]["net-collection-rate"], {"initial-population": 2, "numerator": 2, "denominator": 2},
               {"numerator": 12345, "denominator": 33333}),
         _with(own[SECOND]["net-collection-rate"], {"initial-population": 1, "numerator": 1, "denominator": 1},
               {"numerator": 1, "denominator": 66667})],
        [_with(own["demo"]["days-in-ar"], {"initial-population": 4, "numerator": 4, "denominator": 4},
               {"numerator": 10001, "denominator": 20000}),
         _with(own[SECOND]["days-in-ar"], {"initial-population": 1, "numerator": 1, "denominator": 1},
               {"numerator": 0, "denominator": 0})],
        [own["demo"]["days-to-payment"], own[SECOND]["days-to-payment"]],
    ]
    scorings = {"denial-rate": "proportion", "net-collection-rate": "ratio", "days-in-ar": "ratio",
                "days-to-payment": "continuous-variable"}
    browser.get(f"{server.base}/app/#/dashboard")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "header.top"), what="the app")
    for reports_ in cases:
        measure = reports_[0]["measure"].split("|")[0].rsplit("/", 1)[-1]
        got = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('./js/combined.js').then((m) => done(m.combineReports(arguments[0], arguments[1])),"
            " (e) => done({failed: String(e)}));", reports_, scorings[measure])
        expected = combine(reports_)
        for mine, theirs in zip(got["group"], expected["group"]):
            assert mine.get("measureScore", {}).get("value") == theirs.get("measureScore", {}).get("value"), measure
            assert [p["count"] for p in mine["population"]] == [p["count"] for p in theirs["population"]]
            assert [p.get("extension") for p in mine["population"]] == [p.get("extension") for p in theirs["population"]]


def claim_count(server: DemoServer, token: str | None) -> int:
    """How many claims a token reaches (None: the demo practice's backend token)."""
    if token is None:
        with server.api() as api:
            return api.get("/Claim", params={"_summary": "count"}).json()["total"]
    return httpx.get(server.base + "/fhir/Claim", params={"_summary": "count"},
                     headers={"Authorization": f"Bearer {token}"}).json()["total"]


def _js(value: float) -> str:
    """How the browser writes a number into an attribute."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def test_switching_shows_the_other_practice(server: DemoServer, browser: Any, second: Any) -> None:
    browser.get(f"{server.base}/app/#/dashboard?start={START}&end={END}")
    Select(wait_for(lambda: browser.find_element(By.ID, "practice-switch"), what="the switcher")).select_by_value(SECOND)
    wait_for(lambda: browser.find_element(By.ID, "current-practice").get_attribute("data-practice") == SECOND,
             what="the second practice")
    assert "username" not in browser.page_source  # no login page: the refresh grant switched
    browser.get(f"{server.base}/app/#/dashboard?start={START}&end={END}")
    with second.for_tenant(SECOND).reading() as reader:
        expected = evaluate(reader, "denial-rate", date.fromisoformat(START), date.fromisoformat(END))
    wanted = _js(expected["group"][0]["measureScore"]["value"])
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, '.tile[data-measure="denial-rate"] .score')
             .get_attribute("data-score") == wanted, what="the second practice's denial rate")
    assert claim_count(server, session(browser)["accessToken"]) == 5  # the second practice's claims, not the demo's


def test_sign_out_ends_every_practice_token(server: DemoServer, browser: Any) -> None:
    stored = session(browser)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait_for(lambda: browser.find_element(By.ID, "practice"), what="the sign-in form")
    answer = httpx.post(server.base + "/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": stored["refreshToken"], "client_id": stored["clientId"],
        "practice": "demo"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    time.sleep(1.5)  # revocations reach every process within a poll
    assert httpx.get(server.base + "/fhir/Claim", headers={"Authorization": f"Bearer {stored['accessToken']}"}
                     ).status_code == 401


def test_one_practice_means_no_switcher(server: DemoServer, browser: Any) -> None:
    engine = make_engine(server.database_url)
    admin.create_user(engine, tenant="demo", username="demo-solo", password="a long solo passphrase", role="biller")
    engine.dispose()
    sign_in(browser, server, "demo-solo", "a long solo passphrase")
    assert not browser.find_elements(By.ID, "practice-switch")
    assert not browser.find_elements(By.LINK_TEXT, "All my practices")
    browser.get(f"{server.base}/app/#/combined")
    wait_for(lambda: "You work for one practice" in browser.find_element(By.TAG_NAME, "main").text,
             what="the one-practice note")
