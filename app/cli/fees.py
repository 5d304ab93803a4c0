"""``therabridge fees load``: a practice's fee schedule from a CSV file.

Every row is checked before anything is written; one bad row and the command prints each
problem (``row 3: amount "12.3x" is not a money amount …``) and exits 1 with nothing stored.
Otherwise all rows are written in one transaction as ChargeItemDefinitions and the counts are
printed (exit 0). Columns, ids and reloads: app/claims/fee_schedule.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

fees = typer.Typer(no_args_is_help=True, help="The practice's fee schedule (ChargeItemDefinitions).")


@fees.command("load")
def load(
    file: Path = typer.Argument(..., help="CSV with columns code,modifiers,amount,start,end[,expected]."),
    tenant: str = typer.Option(..., "--tenant", help="The practice (tenant) whose schedule this is."),
    payer: Optional[str] = typer.Option(None, "--payer",
                                        help="Organization id of the payer the optional expected column is contracted with."),
) -> None:
    """Validate every row, then write them all (or nothing) as the tenant's fees."""
    import sqlalchemy as sa

    from app.bootstrap import open_store
    from app.claims import fee_schedule
    from app.fhir.store.store import TENANT
    from app.settings import get_settings

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        typer.echo(f"error: cannot read {file}: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        rows = fee_schedule.parse_rows(text, payer=payer)
    except fee_schedule.FeeFileError as err:
        for line in err.errors:
            typer.echo(line, err=True)
        typer.echo(f"{file.name}: {len(err.errors)} problem(s); nothing was written", err=True)
        raise typer.Exit(1) from None
    store = open_store(get_settings())
    with store.engine.connect() as conn:
        if conn.execute(sa.select(TENANT.c.id).where(TENANT.c.id == tenant)).first() is None:
            typer.echo(f"error: no tenant {tenant!r}", err=True)
            raise typer.Exit(1)
    with store.for_tenant(tenant).unit() as unit:
        if payer:
            org = unit.current("Organization", payer)
            if org is None or org.deleted:
                typer.echo(f"error: --payer {payer}: no Organization/{payer} in tenant {tenant}; nothing was written",
                           err=True)
                raise typer.Exit(1)
        counts = fee_schedule.load(unit, rows, payer=payer)
    typer.echo(f"{len(rows)} fee(s): {counts['created']} created, {counts['updated']} updated, "
               f"{counts['unchanged']} unchanged")


def register(app: typer.Typer) -> None:
    app.add_typer(fees, name="fees")
