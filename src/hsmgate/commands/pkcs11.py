"""``hsmgate pkcs11 list``: what a PKCS#11 module offers (slots, tokens, mechanisms); no PIN needed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hsmgate.commands.common import fail

if TYPE_CHECKING:
    from hsmgate.domain.key_capabilities import AlgorithmOffer
    from hsmgate.hsm.pkcs11.module import SlotDescription

app = typer.Typer(help="Operator tools for PKCS#11 modules.", no_args_is_help=True)


@app.command("list")
def list_module(
    module: Annotated[str, typer.Option(envvar="HSMGATE_PKCS11_MODULE",
                                        metavar="PATH", help="Path of the PKCS#11 module")],
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
    offers = {slot["slot_id"]: token_offer(slot) for slot in slots if slot["token"] is not None}
    if as_json:
        print(json.dumps([{**slot, "hsmgate": [{"algorithm": o.algorithm, "generates": list(o.generates),
                                                 "signatureAlgorithms": list(o.signature_algorithms)}
                                                for o in offers[slot["slot_id"]]]}
                          if slot["slot_id"] in offers else dict(slot) for slot in slots], indent=2))
        return
    console = Console(highlight=False)
    console.print(Text(f"PKCS#11 module {module}", style="bold"))
    for slot in slots:
        _print_slot(console, slot)
    for slot in slots:
        if mechanisms and slot["mechanisms"]:
            _print_mechanisms(console, slot)
    for slot_id, offer in offers.items():
        _print_offer(console, slot_id, offer)


def token_offer(slot: SlotDescription) -> list[AlgorithmOffer]:
    """What hsmgate can do with the slot's token, from its mechanism list alone (no login): per key
    algorithm, the sizes or curves it generates and the signature algorithms it runs."""
    from hsmgate.domain.key_capabilities import backend_offer
    from hsmgate.hsm.pkcs11.capabilities import TokenMechanisms

    mechanisms = slot["mechanisms"]
    token = TokenMechanisms(frozenset(m["code"] for m in mechanisms),
                            {m["code"]: (m["min_key_size"], m["max_key_size"]) for m in mechanisms})
    return backend_offer(token.capabilities())


def _print_offer(console: Console, slot_id: int, offer: list[AlgorithmOffer]) -> None:
    """The key algorithms hsmgate can create on the token and the signature algorithms each runs."""
    table = Table(title=f"hsmgate on slot {slot_id}: keys it creates and signature algorithms it runs "
                        "(ciphers, wrapping, HMAC: GET /v1/key/{keyName}/capabilities)")
    table.add_column("algorithm", no_wrap=True)
    table.add_column("sizes / curves", overflow="fold")
    table.add_column("signatureAlgorithm", overflow="fold")
    for row in offer:
        table.add_row(row.algorithm, ", ".join(row.generates), ", ".join(row.signature_algorithms) or "-")
    console.print()
    console.print(table)


def _print_slot(console: Console, slot: SlotDescription) -> None:
    """One slot as label/value lines: values wrap, but are never cut short (a serial is copied from here)."""
    console.print()
    console.print(Text(f"slot {slot['slot_id']}: {slot['description'].strip()}", style="bold"))
    rows = Table.grid(padding=(0, 2))
    rows.add_column(no_wrap=True)
    rows.add_column(overflow="fold")
    token = slot["token"]
    if token is None:
        rows.add_row("token", Text("none present"))
    else:
        for name, value in (("token label", token["label"]), ("serial", token["serial"]),
                            ("manufacturer", token["manufacturer"]), ("model", token["model"]),
                            ("token flags", ", ".join(token["flags"]))):
            rows.add_row(name, Text(value.strip()))
    rows.add_row("slot flags", Text(", ".join(slot["flags"])))
    console.print(rows)


def _print_mechanisms(console: Console, slot: SlotDescription) -> None:
    """The token's mechanisms: names and key sizes on one line each, the flags wrapped."""
    label = slot["token"]["label"].strip() if slot["token"] else ""
    table = Table(title=f"mechanisms of slot {slot['slot_id']} ({label})")
    table.add_column("mechanism", no_wrap=True, overflow="fold")
    table.add_column("min key", justify="right", no_wrap=True)
    table.add_column("max key", justify="right", no_wrap=True)
    table.add_column("flags", overflow="fold")
    for mech in slot["mechanisms"]:
        table.add_row(mech["name"], str(mech["min_key_size"]), str(mech["max_key_size"]),
                      ", ".join(mech["flags"]))
    console.print()
    console.print(table)
