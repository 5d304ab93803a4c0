"""``therabridge x12 …``: encode FHIR to X12, decode X12 to FHIR, validate X12 files.

Exit codes — decode: 0 ok, 1 unusable file (an OperationOutcome is printed);
validate: 0 valid, 1 errors found, 2 file unreadable (missing, or not X12 at all).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import orjson
import typer

x12_app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="X12 5010: 837P/270/276 out, 999/277CA/277/271/835 in.")


def _print_json(data: Any, compact: bool = False) -> None:
    """Indented JSON for people; ``compact`` writes one line, for ``jq -c``-style pipelines and logs."""
    option = None if compact else orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(data, option=option).decode() + "\n")


def _outcome(message: str, errors: list | None = None) -> dict[str, Any]:
    from payer_adapters.x12 import operation_outcome

    if errors:
        return operation_outcome(errors)
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": message}]}


class _StartAt:
    """CLI control numbers: start from the clock (seconds) so successive runs increase,
    unless ``--control-number`` fixes the start. The server uses its durable sequence instead."""

    def __init__(self, start: int) -> None:
        from payer_adapters.x12 import InMemoryControlNumbers

        self._inner = InMemoryControlNumbers(start=start)

    def next(self, partner: str, kind: str) -> int:
        value = self._inner.next(partner, kind)  # type: ignore[arg-type]
        return value % 10_000 or 1 if kind == "ST" else value


@x12_app.command("encode")
def encode(
    file: Path = typer.Argument(..., help="JSON Bundle with Claims or CoverageEligibilityRequests"),
    partner: str = typer.Option("default", "--partner", help="trading partner from partners.json"),
    control_number: Optional[int] = typer.Option(None, "--control-number", help="first ISA13/GS06 to use"),
    transaction: str = typer.Option("auto", "--transaction",
                                    help="auto (Claims → 837P, else CoverageEligibilityRequests → 270), "
                                         "837P, 270, or 276 (status requests for the bundle's submitted Claims)"),
) -> None:
    """Write an 837P (Claims), 270 (CoverageEligibilityRequests) or, with ``--transaction 276``, a
    claim status request to standard output."""
    from payer_adapters.x12 import X12Error, encode_270, encode_276, encode_837p, load_partner

    encoders = {"837P": encode_837p, "837": encode_837p, "270": encode_270, "276": encode_276}
    wanted = transaction.upper()
    if wanted != "AUTO" and wanted not in encoders:
        _print_json(_outcome(f"--transaction must be auto, 837P, 270 or 276, not {transaction[:12]}"))
        raise typer.Exit(2)

    try:
        bundle = orjson.loads(file.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        _print_json(_outcome(f"cannot read {file.name}: {type(exc).__name__}"))
        raise typer.Exit(2)
    try:
        tp = load_partner(partner)
    except KeyError as exc:
        _print_json(_outcome(str(exc)))
        raise typer.Exit(2)
    start = control_number if control_number is not None else int(time.time()) % 900_000_000
    numbers = _StartAt(max(start, 1))
    types = {e.get("resource", {}).get("resourceType") for e in bundle.get("entry") or []} \
        if bundle.get("resourceType") == "Bundle" else {bundle.get("resourceType")}
    try:
        if wanted != "AUTO":
            out = encoders[wanted](bundle, tp, numbers)
        elif "Claim" in types:
            out = encode_837p(bundle, tp, numbers)
        elif "CoverageEligibilityRequest" in types:
            out = encode_270(bundle, tp, numbers)
        else:
            _print_json(_outcome("the bundle holds no Claim or CoverageEligibilityRequest"))
            raise typer.Exit(1)
    except X12Error as err:
        _print_json(_outcome(str(err), [err]))
        raise typer.Exit(1)
    sys.stdout.write(out.decode())


@x12_app.command("decode")
def decode(
    file: Path = typer.Argument(..., help="X12 file (999, 277CA, 277, 271 or 835)"),
    compact: bool = typer.Option(False, "--compact", help="one-line JSON instead of indented"),
) -> None:
    """Print a FHIR Bundle (collection) of what the file becomes."""
    from payer_adapters.x12 import X12Error
    from payer_adapters.x12 import decode as do_decode

    if not file.is_file():
        _print_json(_outcome(f"file not found: {file.name}"), compact)
        raise typer.Exit(1)
    try:
        result = do_decode(file)
    except X12Error as err:
        _print_json(_outcome(str(err), [err]), compact)
        raise typer.Exit(1)
    _print_json(result.to_fhir(), compact)


@x12_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="X12 file"),
    pyx12: bool = typer.Option(True, "--pyx12/--no-pyx12", help="also run pyx12 where it has a map"),
) -> None:
    """Structural checks plus pyx12; prints OK or one error per line."""
    from payer_adapters.x12 import X12SyntaxError
    from payer_adapters.x12 import validate as do_validate

    if not file.is_file():
        typer.echo(f"{file.name}: file not found", err=True)
        raise typer.Exit(2)
    errors = do_validate(file, use_pyx12=pyx12)
    if not errors:
        typer.echo(f"{file.name}: OK")
        return
    for err in errors:
        typer.echo(f"{file.name}: {type(err).__name__}: {err}")
    if any(isinstance(e, X12SyntaxError) for e in errors):
        raise typer.Exit(2)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(x12_app, name="x12")
