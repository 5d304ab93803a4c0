"""``therabridge payer-rules policy``: a practice's own rule-proposal threshold, shown and set
through the command line, refused when out of range, and read by the detection."""
from __future__ import annotations

import os
import subprocess
import sys

from app.payers import denial_patterns


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "app.cli", "payer-rules", "policy", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_policy_is_shown_set_and_checked(store, tenant, database_url):
    shown = _cli(database_url, tenant)
    assert shown.returncode == 0, shown.stderr
    assert "after 3 denied claims within 30 days" in shown.stdout  # the defaults
    assert _cli(database_url, tenant, "--claims", "5").returncode == 0
    after = _cli(database_url, tenant, "--days", "14")
    assert after.returncode == 0 and "after 5 denied claims within 14 days" in after.stdout
    refused = _cli(database_url, tenant, "--claims", "1")
    assert refused.returncode == 1 and "min_claims must be between 2 and 100" in refused.stderr
    assert _cli(database_url, "no-such-practice").returncode == 1
    with store.engine.connect() as conn:
        assert denial_patterns.policy(conn, tenant) == denial_patterns.Policy(5, 14)
