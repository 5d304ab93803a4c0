"""The payer directory: admin API behind the __admin scope, CLI, credentials encrypted at rest."""
from __future__ import annotations

import json

import sqlalchemy as sa
from typer.testing import CliRunner

from app.directory.tables import CONNECTIONS

from tests.flows import SANDBOX, admin_headers, load_practice

PAS = {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
       "client_id": "demo-client"}


def _stored_credentials(store, tenant):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(CONNECTIONS.c.credentials).where(CONNECTIONS.c.tenant_id == tenant)).scalar_one()


async def test_admin_api_manages_payers_and_never_shows_secrets(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    body = {"organization": "payer-wc", "kind": "fhir-payer", "settings": PAS,
            "credentials": {"client_secret": "demo-secret"}, "profile": "workers-comp", "auto_submit": True}
    assert (await api.post("/admin/payers", json=body)).status_code == 401
    plain = await admin_headers(api, store.engine, tenant, "system/*.rs")
    assert (await api.post("/admin/payers", json=body, headers=plain)).status_code == 403
    admin = await admin_headers(api, store.engine, tenant, "system/*.rs __admin")

    r = await api.post("/admin/payers", json=body, headers=admin)
    assert r.status_code == 201, r.text
    shown = r.json()
    assert shown["payerId"] == "WCFUND" and shown["hasCredentials"] and shown["autoSubmit"]
    assert "demo-secret" not in r.text
    token = _stored_credentials(store, tenant)
    assert token and "demo-secret" not in token  # Fernet ciphertext at rest

    listed = (await api.get("/admin/payers", headers=admin)).json()["payers"]
    assert [p["organization"] for p in listed] == ["payer-wc"] and "demo-secret" not in json.dumps(listed)
    r = await api.put("/admin/payers/payer-wc/credentials", json={"credentials": {"client_secret": "rotated"}},
                      headers=admin)
    assert r.status_code == 200
    assert _stored_credentials(store, tenant) != token

    bad = await api.post("/admin/payers", json={**body, "kind": "carrier-pigeon"}, headers=admin)
    assert bad.status_code == 400 and "unknown adapter kind" in bad.text
    missing = await api.post("/admin/payers", json={**body, "organization": "nope"}, headers=admin)
    assert missing.status_code == 400
    terms = await api.post("/admin/payers", json={**body, "status_follow_up_days": 14}, headers=admin)
    assert terms.status_code == 201 and terms.json()["statusFollowUpDays"] == 14
    zero = await api.post("/admin/payers", json={**body, "status_follow_up_days": 0}, headers=admin)
    assert zero.status_code == 400 and "status_follow_up_days" in zero.text


async def test_cli_adds_lists_and_rotates(api, store, tenant, demo_bundle, payer_settings, monkeypatch, tmp_path):
    await load_practice(api, demo_bundle)
    monkeypatch.setenv("THERABRIDGE_DATABASE_URL", payer_settings.database_url)
    monkeypatch.setenv("THERABRIDGE_KEY_ENCRYPTION_KEY", payer_settings.key_encryption_key)
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        import typer

        from app.cli import payers as payers_cli

        cli = typer.Typer()
        payers_cli.register(cli)
        run = CliRunner().invoke
        r = run(cli, ["payers", "add", "--tenant", tenant, "--organization", "payer-acme", "--kind",
                      "clearinghouse-json", "--settings", json.dumps({"base_url": SANDBOX}),
                      "--credentials", '{"api_key": "test_sandbox_key"}', "--profile", "commercial", "--auto-submit",
                      "--status-follow-up-days", "30"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["autoSubmit"] is True and "test_sandbox_key" not in r.output
        assert json.loads(r.output)["statusFollowUpDays"] == 30
        r = run(cli, ["payers", "list", "--tenant", tenant])
        assert r.exit_code == 0 and json.loads(r.output)[0]["organization"] == "payer-acme"
        r = run(cli, ["payers", "rotate-credentials", "--tenant", tenant, "--organization", "payer-acme",
                      "--credentials", '{"api_key": "new"}'])
        assert r.exit_code == 0 and "new" not in json.loads(r.output).values()
        r = run(cli, ["payers", "add", "--tenant", tenant, "--organization", "payer-acme", "--kind", "x12-directory",
                      "--settings", "{}"])
        assert r.exit_code == 2 and "root" in r.output
    finally:
        get_settings.cache_clear()


def test_development_key_file_is_private_and_postgres_needs_a_key(tmp_path, payer_settings):
    import stat

    import pytest

    from app.directory import secrets

    dev = payer_settings.model_copy(update={"key_encryption_key": None, "var_dir": str(tmp_path),
                                            "database_url": f"sqlite:///{tmp_path}/x.db"})
    with pytest.raises(secrets.CredentialKeyError):
        secrets.decrypt(dev, "gAAAA-not-made-yet")  # reading never creates a key
    assert not (tmp_path / "credential.key").exists()
    token = secrets.encrypt(dev, {"api_key": "k1"})
    assert stat.S_IMODE((tmp_path / "credential.key").stat().st_mode) == 0o600
    assert secrets.decrypt(dev, token) == {"api_key": "k1"}
    old = (tmp_path / "credential.key").read_text().strip()
    rotated = payer_settings.model_copy(update={"database_url": dev.database_url})
    assert secrets.decrypt(rotated, secrets.reencrypt(rotated, token, old)) == {"api_key": "k1"}
    prod = dev.model_copy(update={"database_url": "postgresql+psycopg://db/x"})
    with pytest.raises(secrets.CredentialKeyError):
        secrets.encrypt(prod, {"api_key": "k1"})
