"""``therabridge payer-rules policy``: when repeated denials propose a payer rule, per practice.

Without options it prints the practice's threshold (its own, or the defaults of
app/payers/data/rule_proposals.json); with ``--claims`` and ``--days`` it stores its own: a
rule-proposal Task opens when one payer denies one procedure code for one reason on that many
distinct claims within that many days. Out-of-range values exit 1 with nothing stored.
"""
from __future__ import annotations

from typing import Optional

import typer

payer_rules = typer.Typer(no_args_is_help=True, help="A practice's own payer rules: when repeated denials propose one.")


@payer_rules.command("policy")
def policy(
    tenant: str = typer.Argument(..., help="The practice (tenant)."),
    claims: Optional[int] = typer.Option(None, "--claims", help="Distinct denied claims that make a pattern."),
    days: Optional[int] = typer.Option(None, "--days", help="Within this many days."),
) -> None:
    """Show or set the practice's rule-proposal threshold."""
    import sqlalchemy as sa

    from app.bootstrap import open_store
    from app.fhir.store.store import TENANT
    from app.payers import denial_patterns
    from app.settings import get_settings

    store = open_store(get_settings())
    with store.engine.connect() as conn:
        if conn.execute(sa.select(TENANT.c.id).where(TENANT.c.id == tenant)).first() is None:
            typer.echo(f"error: no tenant {tenant!r}", err=True)
            raise typer.Exit(1)
        current = denial_patterns.policy(conn, tenant)
    if claims is not None or days is not None:
        try:
            current = denial_patterns.set_policy(store.engine, tenant, claims if claims is not None else current.min_claims,
                                                 days if days is not None else current.window_days)
        except ValueError as err:
            typer.echo(f"error: {err}; nothing was stored", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{tenant}: propose a payer rule after {current.min_claims} denied claims within "
               f"{current.window_days} days")


def register(app: typer.Typer) -> None:
    app.add_typer(payer_rules, name="payer-rules")
