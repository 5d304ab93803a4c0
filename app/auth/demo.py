"""Demo credentials for ``therabridge serve --demo`` (idempotent).

Creates the ``demo`` tenant, a Backend Services client allowed ``system/*.cruds`` whose
private key is written to ``var/demo-backend-key.json``, and a ``demo-biller`` user whose
password is written to ``var/demo-user.txt``. Both files are created mode 0600. Returns what
the run command prints: how to get a token and call the API.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from joserfc import jwk
from sqlalchemy.engine import Engine

from app.auth import admin
from app.auth.crypto import new_secret
from app.auth.discovery import token_url
from app.auth.models import JWKS, T
from app.auth.users import hash_password
from app.db import Tenant, write_connection
from app.settings import Settings

TENANT = "demo"
CLIENT_NAME = "Demo EHR (backend services)"
CLIENT_SCOPE = "system/*.cruds"
USERNAME = "demo-biller"
KEY_FILE = "demo-backend-key.json"
USER_FILE = "demo-user.txt"
ALG = "ES384"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _exists(engine: Engine, table: sa.Table, *where: Any) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.literal(1)).select_from(table).where(*where)).first() is not None


def ensure_demo_credentials(engine: Engine, settings: Settings, var_dir: Path) -> dict[str, Any]:
    tenants = Tenant.__table__  # type: ignore[attr-defined]
    if not _exists(engine, tenants, tenants.c.id == TENANT):
        admin.create_tenant(engine, TENANT, "Demo therapy practice", public_url=settings.public_url)

    key_path = var_dir / KEY_FILE
    data = json.loads(key_path.read_text()) if key_path.exists() else None
    if data is None or not _exists(engine, T["client"], T["client"].c.client_id == data.get("client_id")):
        key = jwk.ECKey.generate_key("P-384", parameters={"kid": new_secret(9)})
        public = dict(key.as_dict(private=False), alg=ALG, use="sig")
        created = admin.register_client(engine, tenant=TENANT, name=CLIENT_NAME, scope=CLIENT_SCOPE,
                                         kind=JWKS, jwks={"keys": [public]})
        data = {"client_id": created["client_id"], "token_url": token_url(settings), "alg": ALG,
                "scope": CLIENT_SCOPE, "private_jwk": key.as_dict(private=True)}
        _write_private(key_path, json.dumps(data, indent=2) + "\n")
    elif data.get("token_url") != token_url(settings):
        data["token_url"] = token_url(settings)
        _write_private(key_path, json.dumps(data, indent=2) + "\n")

    user_path = var_dir / USER_FILE
    users = T["user"]
    have_user = _exists(engine, users, users.c.tenant_id == TENANT, users.c.username == USERNAME)
    if not (have_user and user_path.exists()):
        password = new_secret(12)
        if have_user:
            with write_connection(engine) as conn, conn.begin():
                conn.execute(sa.update(users).where(users.c.tenant_id == TENANT, users.c.username == USERNAME)
                             .values(password_hash=hash_password(password), failed_logins=0, locked_until=None))
        else:
            admin.create_user(engine, tenant=TENANT, username=USERNAME, password=password, role="biller")
        _write_private(user_path, f"tenant: {TENANT}\nusername: {USERNAME}\npassword: {password}\n")

    fhir = settings.fhir_base
    return {
        "tenant": TENANT,
        "client_id": data["client_id"],
        "key_file": str(key_path),
        "user": USERNAME,
        "user_file": str(user_path),
        "token_command": f"python -m app.auth.get_token {key_path}",
        "curl": f'curl -H "Authorization: Bearer $(python -m app.auth.get_token {key_path})" {fhir}/Patient',
        "smart_configuration": f"{fhir}/.well-known/smart-configuration",
    }
