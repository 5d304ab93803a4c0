"""The ``therabridge`` command line: one Typer app, each command group in its own module."""
from __future__ import annotations

import typer

from app.cli import admin, billing, claim, core, fees, measures, payers, sandbox, x12

# Plain (click) help and error formatting: Rich's would import rich and markdown-it on every
# --help and usage error, a third of the time a command may take to start. Sub-apps inherit it.
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="TheraBridge integration server.")

for module in (core, admin, claim, x12, payers, fees, sandbox, billing, measures):
    module.register(app)


def main() -> None:
    app()
