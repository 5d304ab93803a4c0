"""The ``therabridge tenants|clients|users`` commands, run as a user would (a subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.auth.crypto import digest
from app.auth.models import T
from app.db import make_engine
from tests.app.auth.conftest import PASSWORD, ROOT, new_key, public_jwks, unique


@pytest.fixture(scope="module")
def cli_db(db_url: str, engine: sa.Engine) -> str:
    """The module's database, already migrated by the ``engine`` fixture."""
    return db_url


def run(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": db}
    return subprocess.run([str(Path(sys.executable).parent / "therabridge"), *args], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_tenant_client_user_commands(cli_db: str, tmp_path: Path) -> None:
    slug = unique("cli")
    out = run(cli_db, "tenants", "create", slug, "--name", "CLI practice")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"id": slug, "name": "CLI practice"}
    assert run(cli_db, "tenants", "create", slug).returncode != 0

    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(new_key("ES384"))))
    out = run(cli_db, "clients", "register", "--tenant", slug, "--name", "EHR", "--scope", "system/*.rs",
              "--jwks", str(jwks_file))
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)) == {"client_id"}

    out = run(cli_db, "clients", "register", "--tenant", slug, "--name", "Portal", "--scope", "openid patient/*.rs",
              "--secret", "--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://b.example/cb")
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    engine = make_engine(cli_db)
    with engine.connect() as conn:
        row = conn.execute(sa.select(T["client"]).where(T["client"].c.client_id == created["client_id"])).one()
    assert row.secret_hash == digest(created["client_secret"]) and created["client_secret"] not in row.secret_hash
    assert json.loads(row.redirect_uris) == ["https://a.example/cb", "https://b.example/cb"]

    out = run(cli_db, "clients", "register", "--tenant", slug, "--name", "App", "--scope", "openid",
              "--public", "--redirect-uri", "https://a.example/cb")
    assert out.returncode == 0 and "client_secret" not in json.loads(out.stdout)
    out = run(cli_db, "clients", "register", "--tenant", slug, "--name", "x", "--scope", "openid", "--public", "--secret",
              "--redirect-uri", "https://a.example/cb")
    assert out.returncode != 0

    out = run(cli_db, "users", "create", "--tenant", slug, "--username", "ann", "--role", "clinician",
              "--fhir-user", "Practitioner/42", stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fhir_user"] == "Practitioner/42"
    with engine.connect() as conn:
        user = conn.execute(sa.select(T["user"]).where(T["user"].c.username == "ann", T["user"].c.tenant_id == slug)).one()
    assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash
    assert run(cli_db, "users", "create", "--tenant", slug, "--username", "bob", "--role", "wizard",
               stdin=PASSWORD + "\n").returncode != 0

    out = run(cli_db, "clients", "initial-token", "--tenant", slug)
    assert out.returncode == 0 and json.loads(out.stdout)["initial_access_token"]
    engine.dispose()
