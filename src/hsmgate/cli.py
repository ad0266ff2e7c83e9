"""The ``hsmgate`` command. Thin: each command group lives in ``hsmgate.commands``.

Every error is one line on standard error and exit status 2 (``commands/common.py`` ``fail``); an
error nobody anticipated is reported the same way, by its type and first line, and
``hsmgate --debug …`` shows its traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hsmgate import __version__
from hsmgate.commands import approver, audit, db, docs, partition, pkcs11, remote, token
from hsmgate.commands.common import fail_unexpected, state
from hsmgate.commands.serve import serve
from hsmgate.warnings_filter import silence_dsa_deprecation

silence_dsa_deprecation()  # DSA stays for the TSB's DSA keys; the warning says nothing an operator can act on

cli = typer.Typer(help="hsmgate: REST gateway to hardware security modules (Securosys TSB wire format).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@cli.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="Print the traceback of an error as well")] = False,
) -> None:
    """hsmgate: REST gateway to hardware security modules (Securosys TSB wire format)."""
    state.debug = debug


cli.command()(serve)
cli.add_typer(token.app, name="token")
cli.add_typer(partition.app, name="partition")
cli.add_typer(audit.app, name="audit")
cli.add_typer(db.app, name="db")
cli.add_typer(pkcs11.app, name="pkcs11")
cli.add_typer(docs.app, name="docs")
remote.register(cli)  # key, sign, verify, encrypt, decrypt, request: calls to a running hsmgate
cli.add_typer(approver.app, name="approver")  # an approver's client


@cli.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if state.debug:
            raise
        try:
            fail_unexpected(exc)
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)
