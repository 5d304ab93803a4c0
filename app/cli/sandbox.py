"""``therabridge sandbox-payer``: run the simulated clearinghouse and payer on loopback.

HTTP: FHIR (``/fhir/Claim/$submit``, ``$inquire``, ``/fhir/CoverageEligibilityRequest/$submit``,
``/oauth/token``), CHC v3 JSON (``/medicalnetwork/…``) and ``/sandbox/ledger``. With
``--mailbox DIR`` the sandbox answers ``DIR/inbox/*.x12`` into ``DIR/outbox/`` every
``--poll`` seconds; with ``--sftp-port N`` it also starts OpenSSH ``sshd`` (SFTP only) on
127.0.0.1:N serving that folder and prints the adapter settings for it.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import typer


def sandbox_payer(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8900, help="HTTP port."),
    mailbox: Optional[Path] = typer.Option(None, help="Mailbox root (inbox/, outbox/, processed/, archive/)."),
    sftp_port: Optional[int] = typer.Option(None, help="Also serve the mailbox over SFTP (needs openssh-server)."),
    data: Optional[Path] = typer.Option(None, help="Members and rules file (default: the packaged sandbox.json)."),
    poll: float = typer.Option(0.5, help="Seconds between mailbox scans."),
    no_pyx12: bool = typer.Option(False, "--no-pyx12", help="999 with structural checks only (faster)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Accept API calls without tokens or API keys."),
) -> None:
    """Run the sandbox payer until interrupted."""
    import uvicorn

    from payer_adapters.sandbox import create_sandbox_app, load_config

    if sftp_port and not mailbox:
        raise typer.BadParameter("--sftp-port needs --mailbox")
    config = load_config(data, mailbox=mailbox.resolve() if mailbox else None, poll_interval=poll,
                         pyx12=not no_pyx12)
    server = None
    if sftp_port:
        from payer_adapters.sandbox.sshd import start_sshd

        assert mailbox is not None
        state = Path(tempfile.mkdtemp(prefix="therabridge-sandbox-sshd-"))
        server = start_sshd(state, mailbox.resolve(), port=sftp_port)
        settings = {"host": "127.0.0.1", "port": server.port, "username": server.username,
                    "host_key": server.host_public_key, "private_key_path": str(state / "user_ed25519"),
                    "root": str(mailbox.resolve())}
        typer.echo("x12-sftp settings: " + json.dumps(settings))
    try:
        uvicorn.run(create_sandbox_app(config, require_auth=not no_auth), host=host, port=port, log_level="warning")
    finally:
        if server is not None:
            server.stop()


def register(app: typer.Typer) -> None:
    app.command("sandbox-payer")(sandbox_payer)
