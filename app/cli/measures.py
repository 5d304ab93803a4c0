"""``therabridge measures``: the revenue-cycle KPIs from the command line.

``rebuild`` makes a practice's claim facts again from its stored resources (after upgrading a
database that already had claims); ``evaluate`` prints a KPI's MeasureReport for a period.
"""
from __future__ import annotations

import typer

measures = typer.Typer(no_args_is_help=True, help="Revenue-cycle KPIs (Measures) and their claim facts.")


def _tenant_store(tenant: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from app.bootstrap import open_store
    from app.fhir.store.store import TENANT
    from app.settings import get_settings

    store = open_store(get_settings())
    with store.engine.connect() as conn:
        if conn.execute(sa.select(TENANT.c.id).where(TENANT.c.id == tenant)).first() is None:
            typer.echo(f"error: no tenant {tenant!r}", err=True)
            raise typer.Exit(1)
    return store.for_tenant(tenant, actor="cli/measures")


@measures.command("rebuild")
def rebuild(tenant: str = typer.Option(..., "--tenant", help="The practice (tenant) whose facts to rebuild.")) -> None:
    """Make every claim fact of the practice again from its stored resources (one transaction)."""
    from app.measures import facts

    with _tenant_store(tenant).unit() as unit:
        counts = facts.rebuild(unit)
    typer.echo(", ".join(f"{n} {rtype}" for rtype, n in sorted(counts.items())) + " read; facts rebuilt")


@measures.command("evaluate")
def evaluate(measure: str = typer.Argument(..., help="Measure id, e.g. denial-rate."),
             tenant: str = typer.Option(..., "--tenant"),
             start: str = typer.Option(..., "--start", help="periodStart, YYYY-MM-DD"),
             end: str = typer.Option(..., "--end", help="periodEnd, YYYY-MM-DD"),
             report_type: str = typer.Option("population", "--report-type")) -> None:
    """Print the KPI's MeasureReport over the period."""
    import orjson

    from app.fhir.errors import FhirError
    from app.measures.evaluate import evaluate as run, parse_request

    try:
        s, e, kind = parse_request({"periodStart": start, "periodEnd": end, "reportType": report_type})
        with _tenant_store(tenant).reading() as reader:
            report = run(reader, measure, s, e, kind)
    except FhirError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@measures.command("weekly")
def weekly(tenant: str = typer.Option(..., "--tenant"),
           week: str = typer.Option(None, "--week", help="ISO week YYYY-Www (default: last week)")) -> None:
    """Store the week's KPI MeasureReports and PDF summary now (idempotent); prints what it wrote."""
    from datetime import timedelta

    from app.fhir.errors import FhirError
    from app.measures import weekly as reports

    ts = _tenant_store(tenant)
    try:
        with ts.unit() as unit:
            chosen = week or reports.week_of(unit.now.date() - timedelta(days=7))
            result = reports.run_week(unit, chosen)
    except FhirError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(reports.report_json(result))


def register(app: typer.Typer) -> None:
    app.add_typer(measures, name="measures")
