"""Payer credentials encrypted at rest with Fernet.

The key is ``THERABRIDGE_KEY_ENCRYPTION_KEY``. Without it a SQLite (development) server keeps a
generated key in ``<var_dir>/credential.key`` (mode 0600) and says so once; a PostgreSQL
(production) deployment refuses to store or read credentials without a configured key, so
secrets never sit next to a key on a developer's disk by accident. Plaintext never leaves this
module except as the dict handed to an adapter.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from app.settings import Settings

log = logging.getLogger("therabridge.payers")


class CredentialKeyError(RuntimeError):
    """No usable key: configure THERABRIDGE_KEY_ENCRYPTION_KEY."""


def _key_file(settings: Settings) -> Path:
    return Path(settings.var_dir) / "credential.key"


def fernet(settings: Settings, *, create: bool = True) -> Fernet:
    """The credential key; ``create=False`` (reading) never makes a new development key, since
    nothing can have been encrypted with a key that does not exist yet."""
    if settings.key_encryption_key:
        try:
            return Fernet(settings.key_encryption_key.encode())
        except ValueError:
            raise CredentialKeyError("THERABRIDGE_KEY_ENCRYPTION_KEY is not a Fernet key") from None
    if not settings.database_url.startswith("sqlite"):
        raise CredentialKeyError("payer credentials need THERABRIDGE_KEY_ENCRYPTION_KEY on PostgreSQL "
                                 "(generate one with: python -c 'from cryptography.fernet import Fernet; "
                                 "print(Fernet.generate_key().decode())')")
    path = _key_file(settings)
    if not path.exists():
        if not create:
            raise CredentialKeyError(f"no credential key: set THERABRIDGE_KEY_ENCRYPTION_KEY (or restore {path})")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return Fernet(path.read_bytes().strip())
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
        log.warning("generated a development credential key in %s; set THERABRIDGE_KEY_ENCRYPTION_KEY "
                    "in production", path)
    return Fernet(path.read_bytes().strip())


def check_key(settings: Settings) -> None:
    """Fail early (at start-up) when credentials could not be stored or read."""
    fernet(settings)


def encrypt(settings: Settings, credentials: dict[str, Any] | None) -> str | None:
    if not credentials:
        return None
    return fernet(settings).encrypt(json.dumps(credentials).encode()).decode()


def decrypt(settings: Settings, token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(fernet(settings, create=False).decrypt(token.encode()))
    except InvalidToken:
        raise CredentialKeyError("stored payer credentials cannot be decrypted with the configured key") from None


def reencrypt(settings: Settings, token: str | None, old_key: str) -> str | None:
    """Re-encrypt a token made with ``old_key`` under the current key (key rotation)."""
    if not token:
        return None
    plain = Fernet(old_key.encode()).decrypt(token.encode())
    return fernet(settings).encrypt(plain).decode()
