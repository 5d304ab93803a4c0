"""``therabridge payers add|list|rotate-credentials`` and ``therabridge collect``.

Commands work on ``THERABRIDGE_DATABASE_URL`` (migrated first) and print JSON without secrets.
Credentials are given as JSON and stored encrypted (``app/directory/secrets.py``).
"""
from __future__ import annotations

import json
from typing import Any, Optional

import typer

payers = typer.Typer(no_args_is_help=True, help="Payer connections (the payer directory).")


def _store():  # type: ignore[no-untyped-def]
    from app.bootstrap import open_store
    from app.settings import get_settings

    return open_store(get_settings())


def _json(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a JSON object") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return value


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@payers.command("add")
def add(
    tenant: str = typer.Option(..., "--tenant"),
    organization: str = typer.Option(..., "--organization", help="Id of the payer Organization."),
    kind: str = typer.Option(..., "--kind", help="Adapter kind: x12-directory, x12-sftp, clearinghouse-json, fhir-payer."),
    settings: str = typer.Option("{}", "--settings", help="Adapter settings JSON (no secrets)."),
    credentials: Optional[str] = typer.Option(None, "--credentials", help="Secrets JSON (stored encrypted)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="medicare, commercial or workers-comp."),
    timely_filing_days: Optional[int] = typer.Option(None, "--timely-filing-days", min=1),
    auto_submit: bool = typer.Option(False, "--auto-submit/--no-auto-submit", help="Queue clean claims at once."),
    status_follow_up_days: Optional[int] = typer.Option(
        None, "--status-follow-up-days", min=1,
        help="Days a sent claim may go without a 277CA or 835 before the payer is asked (default 21)."),
) -> None:
    """Register (or replace) how to reach a payer."""
    from app import directory
    from app.directory.secrets import CredentialKeyError
    from app.settings import get_settings

    store = _store()
    try:
        link = directory.add(store, get_settings(), tenant, organization, kind, _json(settings, "--settings"),
                             _json(credentials, "--credentials"), profile=profile,
                             timely_filing_days=timely_filing_days, auto_submit=auto_submit,
                             status_follow_up_days=status_follow_up_days)
    except (directory.DirectoryError, CredentialKeyError) as err:
        _fail(err)
        return
    typer.echo(json.dumps(link.public(), indent=2))


@payers.command("list")
def list_(tenant: Optional[str] = typer.Option(None, "--tenant")) -> None:
    """Show the payer connections (credentials are never shown)."""
    from app.payers import calls

    store = _store()
    typer.echo(json.dumps(calls.listing(store.engine, tenant, store.clock()), indent=2))


@payers.command("rotate-credentials")
def rotate(
    tenant: str = typer.Option(..., "--tenant"),
    organization: str = typer.Option(..., "--organization"),
    credentials: str = typer.Option(..., "--credentials", help="The new secrets JSON."),
) -> None:
    """Replace a payer connection's credentials."""
    from app import directory
    from app.directory.secrets import CredentialKeyError
    from app.settings import get_settings

    store = _store()
    try:
        link = directory.rotate_credentials(store.engine, get_settings(), tenant, organization,
                                            _json(credentials, "--credentials"))
    except (directory.DirectoryError, CredentialKeyError) as err:
        _fail(err)
        return
    typer.echo(json.dumps(link.public(), indent=2))


def collect(tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant (default: all).")) -> None:
    """Collect payer answers now and post them (runs the due jobs, then exits)."""
    from app.jobs import Worker
    from app import directory
    from app.payers.inbound import messages, queue_collection

    store = _store()
    tenants = sorted({p.tenant_id for p in directory.list_connections(store.engine, tenant)})
    for t in tenants:
        with store.for_tenant(t).unit() as unit:
            queue_collection(unit)
    worker = Worker(store)
    ran = 0
    while (n := worker.run_once()):
        ran += n
    for t in tenants:
        counts: dict[str, int] = {}
        for m in messages(store, t):
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        typer.echo(f"{t}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no answers"))
    typer.echo(f"ran {ran} job(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(payers, name="payers")
    app.command("collect")(collect)
