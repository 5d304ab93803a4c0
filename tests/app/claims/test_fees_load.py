"""``therabridge fees load``: every row checked first (one bad row: exit 1, nothing written),
then all rows written as ChargeItemDefinitions in one transaction; a reload changes nothing, a
changed amount is a new version of the same resource. Run as the real command on the test database."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

GOOD = """code,modifiers,amount,start,end
97110,,55.00,2026-01-01,2026-06-30
97110,,58.00,2026-07-01,
97530,GO,61.5,2026-01-01,
97140,GP:59,40,2026-01-01,2026-12-31
"""


def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "app.cli", "fees", "load", *args], env=env, capture_output=True,
                          text=True, timeout=120)


async def _fees(api) -> list[dict[str, Any]]:
    bundle = (await api.get("/fhir/ChargeItemDefinition", params={"_count": "100"})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def test_a_bad_row_writes_nothing_and_says_which_rows(api, tenant, database_url, tmp_path: Path):
    path = tmp_path / "fees.csv"
    path.write_text("code,modifiers,amount,start,end\n97110,,55.00,2026-01-01,\n97112,,12.3x,2026-01-01,\n"
                    "97530,GO,-4,2026-01-01,\n97140,,40.00,2026-05-01,2026-04-01\n97150,,40.123,01/02/2026,\n")
    proc = _run(database_url, "--tenant", tenant, str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'row 3: amount "12.3x" is not a money amount' in proc.stderr
    assert 'row 4: amount "-4" is not a money amount' in proc.stderr
    assert "row 5: end 2026-04-01 is before start 2026-05-01" in proc.stderr
    assert 'row 6: amount "40.123"' in proc.stderr and 'row 6: start "01/02/2026" is not a date' in proc.stderr
    assert "row 2" not in proc.stderr
    assert await _fees(api) == []


async def test_a_wrong_header_is_refused(api, tenant, database_url, tmp_path: Path):
    path = tmp_path / "fees.csv"
    path.write_text("code,amount,start\n97110,55.00,2026-01-01\n")
    proc = _run(database_url, "--tenant", tenant, str(path))
    assert proc.returncode == 1 and "row 1: the header must be code,modifiers,amount,start,end" in proc.stderr
    assert await _fees(api) == []


async def test_load_reload_and_a_changed_amount(api, tenant, database_url, tmp_path: Path):
    path = tmp_path / "fees.csv"
    path.write_text(GOOD)
    first = _run(database_url, "--tenant", tenant, str(path))
    assert first.returncode == 0, first.stderr
    assert "4 fee(s): 4 created, 0 updated, 0 unchanged" in first.stdout
    stored = {(r["code"]["coding"][0]["code"], r["title"], r["effectivePeriod"]["start"]): r for r in await _fees(api)}
    assert len(stored) == 4
    go = stored[("97530", "97530 GO", "2026-01-01")]
    assert go["code"]["coding"][0]["extension"][0]["valueCode"] == "GO"
    assert go["propertyGroup"][0]["priceComponent"][0] == {"type": "base", "amount": {"value": 61.5, "currency": "USD"}}
    assert "end" not in go["effectivePeriod"]
    both = stored[("97140", "97140 59 GP", "2026-01-01")]
    assert sorted(e["valueCode"] for e in both["code"]["coding"][0]["extension"]) == ["59", "GP"]

    again = _run(database_url, "--tenant", tenant, str(path))
    assert again.returncode == 0 and "4 fee(s): 0 created, 0 updated, 4 unchanged" in again.stdout
    assert {r["id"]: r["meta"]["versionId"] for r in await _fees(api)} == \
        {r["id"]: r["meta"]["versionId"] for r in stored.values()}

    path.write_text(GOOD.replace("97110,,58.00", "97110,,59.25"))
    changed = _run(database_url, "--tenant", tenant, str(path))
    assert changed.returncode == 0 and "4 fee(s): 0 created, 1 updated, 3 unchanged" in changed.stdout
    after = {r["id"]: r for r in await _fees(api)}
    assert set(after) == {r["id"] for r in stored.values()}  # same ids: a new version, not a new fee
    july = next(r for r in after.values() if r["effectivePeriod"]["start"] == "2026-07-01")
    assert july["meta"]["versionId"] == "2"
    assert july["propertyGroup"][0]["priceComponent"][0]["amount"]["value"] == 59.25


async def test_expected_amounts_for_a_payer(api, tenant, database_url, tmp_path: Path):
    r = await api.put("/fhir/Organization/payer-x", json={"resourceType": "Organization", "id": "payer-x",
                                                          "name": "Payer X"})
    assert r.status_code in (200, 201)
    path = tmp_path / "contract.csv"
    path.write_text("code,modifiers,amount,start,end,expected\n97110,,55.00,2026-01-01,,31.20\n")
    assert _run(database_url, "--tenant", tenant, str(path)).returncode == 1  # expected needs --payer
    assert _run(database_url, "--tenant", tenant, "--payer", "nobody", str(path)).returncode == 1
    assert await _fees(api) == []
    proc = _run(database_url, "--tenant", tenant, "--payer", "payer-x", str(path))
    assert proc.returncode == 0, proc.stderr
    [fee] = await _fees(api)
    contract = fee["propertyGroup"][0]["priceComponent"][1]
    assert contract["type"] == "informational" and contract["amount"]["value"] == 31.2
    assert contract["extension"][0]["valueReference"] == {"reference": "Organization/payer-x"}
