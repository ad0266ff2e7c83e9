"""``hsmgate pkcs11 list``: what a PKCS#11 module offers (slots, tokens, mechanisms); no PIN needed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hsmgate.commands.common import fail

app = typer.Typer(help="Operator tools for PKCS#11 modules.", no_args_is_help=True)


@app.command("list")
def list_module(
    module: Annotated[str, typer.Option(envvar="HSMGATE_PKCS11_MODULE",
                                        help="Path of the PKCS#11 module [HSMGATE_PKCS11_MODULE]")],
    mechanisms: Annotated[bool, typer.Option("--mechanisms/--no-mechanisms", help="Also list mechanisms")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """List the slots and tokens of a module and the mechanisms each token offers."""
    from hsmgate.hsm.base import HsmError
    from hsmgate.hsm.pkcs11 import describe_module

    try:
        slots = describe_module(module)
    except HsmError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(slots, indent=2, default=str))
        return
    console = Console()
    overview = Table(title=f"PKCS#11 module {module}")
    for column in ("slot", "description", "token label", "serial", "model", "flags"):
        overview.add_column(column)
    for slot in slots:
        token = slot["token"] or {}
        overview.add_row(str(slot["slot_id"]), str(slot["description"]).strip(), str(token.get("label", "—")).strip(),
                         str(token.get("serial", "")).strip(), str(token.get("model", "")).strip(),
                         ", ".join(token.get("flags", [])))
    console.print(overview)
    if not mechanisms:
        return
    for slot in slots:
        if not slot["mechanisms"]:
            continue
        label = str((slot["token"] or {}).get("label", "")).strip()
        table = Table(title=f"mechanisms of slot {slot['slot_id']} ({label})")
        for column in ("mechanism", "min key", "max key", "flags"):
            table.add_column(column)
        for mech in slot["mechanisms"]:
            table.add_row(mech["name"], str(mech["min_key_size"]), str(mech["max_key_size"]), ", ".join(mech["flags"]))
        console.print(table)
