"""``therabridge payments record`` and ``therabridge statements run``: the patient's share.

Commands work on ``THERABRIDGE_DATABASE_URL`` (migrated first); what they write is audited
with the command line as the agent. Exit 0 on success, 1 when the input is refused (nothing
is written then)."""
from __future__ import annotations

import json
from datetime import date
from typing import Optional

import typer

payments = typer.Typer(no_args_is_help=True, help="Patient payments.")
statements = typer.Typer(no_args_is_help=True, help="Patient statements.")


def _tenant_store(tenant: str):  # type: ignore[no-untyped-def]
    from app.bootstrap import open_store
    from app.settings import get_settings

    return open_store(get_settings()).for_tenant(tenant, actor="cli/billing")


def _refused(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=1)


@payments.command("record")
def record(
    tenant: str = typer.Option(..., "--tenant"),
    patient: str = typer.Option(..., "--patient", help="Id of the Patient who pays."),
    amount: str = typer.Option(..., "--amount", help="Amount, e.g. 25.00 (more than zero, cents at most)."),
    when: Optional[str] = typer.Option(None, "--date", help="Payment date YYYY-MM-DD (default: today)."),
    method: str = typer.Option("cash", "--method", help="cash, card, check or other."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Receipt, check or card reference."),
    credit: bool = typer.Option(False, "--credit", help="Keep what is above the balance as a credit."),
) -> None:
    """Record a patient payment and print the new balance."""
    from app.billing.ledger import terms
    from app.billing.payments import parse_amount, record as record_payment
    from app.fhir.errors import FhirError

    try:
        value = parse_amount(amount, expression="amount")
        day = date.fromisoformat(when) if when else None
        if method not in terms()["payment_methods"]:
            raise FhirError(400, "invalid", f"--method is one of {', '.join(terms()['payment_methods'])}")
    except ValueError:
        _refused(ValueError(f"--date must be YYYY-MM-DD, not {when!r}"))
        return
    except FhirError as err:
        _refused(err)
        return
    ts = _tenant_store(tenant)
    try:
        with ts.unit() as unit:
            version, after = record_payment(unit, patient, value, method=method, when=day, reference=reference,
                                            credit=credit)
    except FhirError as err:
        _refused(err)
        return
    typer.echo(json.dumps({"paymentReconciliation": f"PaymentReconciliation/{version.id}",
                           "patient": f"Patient/{patient}", "amount": str(value),
                           "balance": str(after.balance)}))


@statements.command("run")
def run(tenant: str = typer.Option(..., "--tenant"),
        when: Optional[str] = typer.Option(None, "--date", help="Statement date YYYY-MM-DD (default: today).")) -> None:
    """Issue a statement to every patient with a balance above zero (once per day and balance)."""
    from app.billing.ledger import ledger
    from app.billing.statements import make_statement, patients_with_eobs
    from app.fhir.errors import FhirError

    try:
        day = date.fromisoformat(when) if when else None
    except ValueError:
        _refused(ValueError(f"--date must be YYYY-MM-DD, not {when!r}"))
        return
    ts = _tenant_store(tenant)
    with ts.reading() as reader:
        patients = patients_with_eobs(reader)
        owing = [p for p in patients if ledger(reader, p).balance > 0]
    made = kept = 0
    for patient in owing:
        try:
            with ts.unit() as unit:
                s = make_statement(unit, patient, day)
        except FhirError as err:
            typer.echo(f"Patient/{patient}: {err}", err=True)
            continue
        made, kept = made + s.created, kept + (not s.created)
        typer.echo(json.dumps({"patient": f"Patient/{patient}", "invoice": f"Invoice/{s.invoice.id}",
                               "document": f"DocumentReference/{s.document.id}", "created": s.created}))
    typer.echo(f"{made} statement(s) issued, {kept} already issued today, {len(patients) - len(owing)} patient(s) "
               "owe nothing")


def register(app: typer.Typer) -> None:
    app.add_typer(payments, name="payments")
    app.add_typer(statements, name="statements")
