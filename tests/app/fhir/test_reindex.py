"""``therabridge db reindex``: resources stored before their index rows existed (as a database
upgraded past a new search parameter holds them) are found by those parameters once indexed
again, with the same rows a write makes; other resources and tenants are not touched."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import sqlalchemy as sa

from app.db import SearchNumber, SearchToken
from tests.app.payers.test_ar_aging import CLAIMS, EOBS, store_all

N = SearchNumber.__table__
T = SearchToken.__table__


def _rows(store: Any, tenant: str, table: sa.Table) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(
            sa.select(*[c for c in table.c if c.name != "pk"]).where(table.c.tenant_id == tenant)))


def _reindex(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "app.cli", "db", "reindex", *args], env=env, capture_output=True,
                          text=True, timeout=120)


async def test_reindex_restores_what_writes_index(api, store, tenant, database_url):
    store_all(store, tenant)
    numbers, tokens = _rows(store, tenant, N), _rows(store, tenant, T)
    assert numbers and tokens
    with store.engine.begin() as conn:  # as stored before the number index existed
        conn.execute(N.delete().where(N.c.tenant_id == tenant))
    found = (await api.get("/fhir/Claim?outstanding=gt0&_count=100")).json()
    assert found["total"] == 0

    done = _reindex(database_url, "--tenant", tenant, "--type", "Claim", "--type", "ExplanationOfBenefit")
    assert done.returncode == 0, done.stderr
    assert f"{len(CLAIMS)} Claim" in done.stdout and f"{len(EOBS)} ExplanationOfBenefit" in done.stdout
    assert _rows(store, tenant, N) == numbers  # what the writes made, derived outstanding included
    assert _rows(store, tenant, T) == tokens
    found = (await api.get("/fhir/Claim?outstanding=gt0&_count=100")).json()
    assert found["total"] > 0

    assert _reindex(database_url, "--tenant", "no-such-practice").returncode == 1
    bad = _reindex(database_url, "--tenant", tenant, "--type", "Spaceship")
    assert bad.returncode == 1 and "Spaceship" in bad.stderr
