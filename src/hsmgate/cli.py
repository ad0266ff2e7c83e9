"""The ``hsmgate`` command. Thin: each command group lives in ``hsmgate.commands``."""

from __future__ import annotations

import sys

import typer

from hsmgate import __version__
from hsmgate.commands import audit, db, docs, partition, pkcs11, token
from hsmgate.commands.serve import serve

cli = typer.Typer(help="hsmgate: REST gateway to hardware security modules (Securosys TSB wire format).",
                  no_args_is_help=True, add_completion=False)
cli.command()(serve)
cli.add_typer(token.app, name="token")
cli.add_typer(partition.app, name="partition")
cli.add_typer(audit.app, name="audit")
cli.add_typer(db.app, name="db")
cli.add_typer(pkcs11.app, name="pkcs11")
cli.add_typer(docs.app, name="docs")


@cli.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
