"""``therabridge measures rebuild`` and ``evaluate`` against the test database."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.app.measures.test_evaluate_measure import store_scenario


def run(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "app.cli", "measures", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_rebuild_and_evaluate_from_the_command_line(store, tenant, database_url):
    store_scenario(store, tenant)
    rebuilt = run(database_url, "rebuild", "--tenant", tenant)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "5 Claim" in rebuilt.stdout and "3 ExplanationOfBenefit" in rebuilt.stdout
    out = run(database_url, "evaluate", "denial-rate", "--tenant", tenant, "--start", "2026-06-01",
              "--end", "2026-06-30")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["group"][0]["measureScore"]["value"] == 0.6667
    bad = run(database_url, "evaluate", "denial-rate", "--tenant", tenant, "--start", "2026-06-30",
              "--end", "2026-06-01")
    assert bad.returncode == 1 and "periodEnd" in bad.stderr
    assert run(database_url, "rebuild", "--tenant", "no-such-practice").returncode == 1
