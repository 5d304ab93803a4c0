"""The practice web app's first screen over a year of claims (``python -m bench.dashboard``; not a test).

A fresh PostgreSQL database, ``therabridge serve --demo`` (and a worker) on loopback, the claim
facts of ``--claims`` claims seeded as ``bench.measures`` seeds them, then headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, driven by selenium) signs in as the demo biller
through the login page. Timed, ``--runs`` times: from asking for ``/app/#/dashboard`` (the app's
first screen: the nine KPI tiles over its default period, the last 90 days) until every tile
shows its score, as the browser sees it: the app's modules, the Measures, nine
``$evaluate-measure`` calls and their rendering. Prints p50 and max; target under 2 s.

    python -m bench.dashboard [--database-url postgresql+psycopg://…/therabridge_bench_dashboard]
                              [--claims 100000] [--runs 10]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.measures import reset, seed
from tests.e2e.web.browser import DemoServer, chrome, sign_in, wait_for

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/therabridge_bench_dashboard"
TILES = 9


def first_screen(driver: object, base: str) -> float:
    """Seconds from asking for the dashboard until every tile has its score (or its error)."""
    from selenium.webdriver.common.by import By

    driver.get("about:blank")  # away: the page is loaded anew (the session stays in this tab's storage)
    start = time.perf_counter()
    driver.get(base + "/app/#/dashboard")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".tile :is(.score, .error)")) == TILES,
             timeout=60, what="every tile computed")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database (dropped and made again)")
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    reset(args.database_url)
    server = DemoServer(args.database_url, Path(tempfile.mkdtemp(prefix="therabridge-dashboard-")))
    driver = None
    try:
        t0 = time.perf_counter()
        counts = seed(args.database_url, "demo", args.claims, random.Random(7))
        print(json.dumps({"seeded": counts, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        driver = chrome()
        sign_in(driver, server, "demo-biller", server.password)
        first_screen(driver, server.base)  # warm: the browser's module cache, the server's plans
        times = sorted(first_screen(driver, server.base) for _ in range(args.runs))
        from selenium.webdriver.common.by import By

        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".tile .error")]
        print(json.dumps({"dashboard_first_screen_s": {"p50": round(statistics.median(times), 2),
                                                       "max": round(times[-1], 2), "runs": args.runs},
                          "tiles_with_a_score": TILES - len(errors), "tile_errors": errors,
                          "claims": args.claims, "load_average": os.getloadavg()}))
    finally:
        if driver is not None:
            driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
