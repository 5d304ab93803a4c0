"""Server, database and data-loading commands.

Each command imports what it runs inside its body: the server (FastAPI, SQLAlchemy, settings)
loads only for the command that needs it, never for ``--help`` or another command.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    db = typer.Typer(help="Database schema.", no_args_is_help=True)
    db.command("upgrade")(db_upgrade)
    db.command("reindex")(db_reindex)
    app.add_typer(db, name="db")
    app.command("load")(load)
    app.command("worker")(worker)
    app.command("openapi")(openapi)


def db_reindex(
    tenant: str = typer.Option(..., "--tenant", help="The practice (tenant) whose resources to index again."),
    types: Optional[list[str]] = typer.Option(None, "--type", help="Only this resource type (repeatable)."),
) -> None:
    """Rewrite the search index of the practice's stored resources from their content (after an
    upgrade adds search parameters: resources stored before it are found by them only then)."""
    import sqlalchemy as sa

    from app.bootstrap import open_store
    from app.fhir.store.reindex import reindex
    from app.fhir.store.store import TENANT
    from app.settings import get_settings

    store = open_store(get_settings())
    with store.engine.connect() as conn:
        if conn.execute(sa.select(TENANT.c.id).where(TENANT.c.id == tenant)).first() is None:
            typer.echo(f"error: no tenant {tenant!r}", err=True)
            raise typer.Exit(1)
    unknown = [t for t in types or [] if store.registry.get(t) is None]
    if unknown:
        typer.echo(f"error: not a resource type this server stores: {', '.join(unknown)}", err=True)
        raise typer.Exit(1)
    counts = reindex(store.for_tenant(tenant, actor="cli/db"), types or None)
    typer.echo(", ".join(f"{n} {rtype}" for rtype, n in sorted(counts.items())) + " indexed" if counts
               else "nothing to index")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    demo: bool = typer.Option(False, help="Load the demo practice before serving."),
) -> None:
    """Upgrade the schema, then serve the API with uvicorn."""
    import logging
    import os

    import uvicorn

    from app.bootstrap import prepare_database
    from app.settings import get_settings

    if "THERABRIDGE_PUBLIC_URL" not in os.environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["THERABRIDGE_PUBLIC_URL"] = f"http://{shown}:{port}"  # inherited by worker processes
        get_settings.cache_clear()
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    summary = prepare_database(settings, demo=demo)
    if demo:
        from app.bootstrap import open_store
        from app.payers.demo import start_demo_payers

        store = open_store(settings)
        summary += start_demo_payers(settings, store, "demo")
        store.engine.dispose()
    for line in summary:
        typer.echo(line)
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level=settings.log_level, proxy_headers=True)


def db_upgrade() -> None:
    """Apply all migrations to THERABRIDGE_DATABASE_URL."""
    from app.db import make_engine
    from app.migrations import upgrade
    from app.settings import get_settings

    upgrade(make_engine(get_settings().database_url))
    typer.echo("database is up to date")


def load(
    paths: list[Path] = typer.Argument(..., exists=True, help="Files or folders of FHIR JSON (resources or Bundles)."),
    url: Optional[str] = typer.Option(None, help="Post to a running server at this FHIR base URL instead of the store."),
    token: Optional[str] = typer.Option(None, envvar="THERABRIDGE_TOKEN", help="Bearer token for --url."),
    tenant: Optional[str] = typer.Option(None, help="Tenant to load into (direct mode)."),
) -> None:
    """Load resources or Bundles; prints a summary of what failed and why (exit 1 if anything did)."""
    from rich.progress import Progress

    from app.loader import Loader
    from app.settings import get_settings

    files = [f for p in paths for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p])]
    loader = Loader.remote(url, token) if url else Loader.direct(get_settings(), tenant)
    failures: list[tuple[str, str]] = []
    done = 0
    with Progress(transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("loading", total=len(files))
        for f in files:
            for label, error in loader.load_file(f):
                if error:
                    failures.append((label, error))
                else:
                    done += 1
            progress.advance(task)
    loader.finish()
    typer.echo(f"loaded {done} item(s) from {len(files)} file(s); {len(failures)} failed")
    for label, error in failures:
        typer.echo(f"  FAILED {label}: {error}", err=True)
    raise typer.Exit(1 if failures else 0)


def worker(
    once: bool = typer.Option(False, help="Run the jobs that are due now, then exit."),
    batch: int = typer.Option(50, min=1, help="Most jobs of one batchable kind (claim generation, claims waiting "
                                               "to go) run together; other jobs are leased one at a time."),
    poll_seconds: float = typer.Option(1.0, help="Pause between polls when the queue is empty."),
) -> None:
    """Run background jobs (claim generation, payer submissions) from the database's outbox."""
    import logging

    from app import heap
    from app.bootstrap import open_store
    from app.jobs import Worker
    from app.settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    w = Worker(open_store(settings), batch=batch)
    heap.settle()  # what the worker keeps is loaded
    if once:
        total = 0
        while (n := w.run_once()):
            total += n
        typer.echo(f"ran {total} job(s)")
        return
    w.run_forever(poll_seconds)


def openapi() -> None:
    """Print the OpenAPI document the server serves."""
    from app.main import openapi_document

    typer.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))
