"""The ``therabridge`` command line: one Typer app, each command group in its own module."""
from __future__ import annotations

import typer

from app.cli import admin, claim, core, payers, sandbox, x12

app = typer.Typer(no_args_is_help=True, add_completion=False, help="TheraBridge integration server.")

for module in (core, admin, claim, x12, payers, sandbox):
    module.register(app)


def main() -> None:
    app()
