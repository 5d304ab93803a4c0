"""Sandbox configuration: the data file plus run options (no rules live in code)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).parent / "data" / "sandbox.json"


@dataclass
class SandboxConfig:
    """``data`` is the parsed ``sandbox.json``; ``mailbox`` the directory root the mailbox
    processor serves (None: no mailbox); ``poll_interval`` seconds between mailbox scans when
    the app runs its own background loop; ``pended_inquiries`` how many ``$inquire`` calls stay
    pended before the answer is complete (0 = the first inquiry completes); ``pyx12``
    whether the 999 also runs pyx12's implementation-guide checks."""

    data: dict[str, Any]
    mailbox: Path | None = None
    poll_interval: float = 0.5
    pended_inquiries: int = 0
    jwks: dict[str, Any] = field(default_factory=dict)  # client_id -> public JWKS for private_key_jwt
    token_ttl: int = 300
    pyx12: bool = True  # 999 checks with pyx12 too (slower on big files; structural checks always)


def load_config(path: str | Path | None = None, **options: Any) -> SandboxConfig:
    """Read the data file (default: the packaged ``data/sandbox.json``)."""
    data = json.loads(Path(path or DATA_FILE).read_text())
    if options.get("mailbox") is not None:
        options["mailbox"] = Path(options["mailbox"])
    return SandboxConfig(data=data, **options)
