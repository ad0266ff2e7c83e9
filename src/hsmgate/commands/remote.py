"""Commands that call a running hsmgate (or TSB) over HTTP with :mod:`hsmgate.client`:
``hsmgate key create | list | show | delete``, ``hsmgate sign``, ``hsmgate verify``,
``hsmgate encrypt | decrypt``, ``hsmgate file encrypt | decrypt`` and ``hsmgate request list | show``.

Each takes ``--url`` (HSMGATE_URL, default http://127.0.0.1:8080) and ``--api-key``
(HSMGATE_API_KEY; none in dev mode). A refusal is one line with the TSB error code and reason,
exit status 2, like every other hsmgate error.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from hsmgate.api.wire.keys import CreateKeyAttributes, SignedKeyAttributesDto
from hsmgate.api.wire.ska import RequestStatusDto
from hsmgate.client import HsmgateClient, SignItem, TsbApiError
from hsmgate.commands.common import fail
from hsmgate.domain.algorithms import CURVES

DEFAULT_URL = "http://127.0.0.1:8080"
#: Items per batch request of ``hsmgate sign --batch`` (the server's default HSMGATE_MAX_BATCH is 1000).
BATCH_SIZE = 100

UrlOption = Annotated[str, typer.Option("--url", envvar="HSMGATE_URL", metavar="URL",
                                        help="hsmgate to call")]
ApiKeyOption = Annotated[str | None, typer.Option("--api-key", envvar="HSMGATE_API_KEY", metavar="KEY",
                                                  show_default=False, help="API key of the caller's role (none in dev mode)")]
KeyOption = Annotated[str, typer.Option("--key", "-k", metavar="LABEL", help="Label of the key to use")]
PasswordOption = Annotated[str | None, typer.Option("--password", metavar="PASSWORD", envvar="HSMGATE_KEY_PASSWORD",
                                                    show_default=False,
                                                    help="The key's password, if it has one (the environment keeps it out of "
                                                         "the process list)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]

key_app = typer.Typer(help="Keys of the partition: create, list, show, delete.", no_args_is_help=True)
request_app = typer.Typer(help="SKA requests of the partition: list, show.", no_args_is_help=True)
file_app = typer.Typer(help="Files encrypted to an EC P-384 key (ECIES container): encrypt, decrypt.",
                       no_args_is_help=True)
console = Console()


@contextmanager
def connected(url: str, api_key: str | None) -> Iterator[HsmgateClient]:
    """A client of ``url``; its refusals and an unreachable server become one-line failures."""
    try:
        with HsmgateClient(url, api_key=api_key) as client:
            yield client
    except TsbApiError as exc:
        fail(f"{url} answered {exc.status}: {exc.error_code} {exc.reason}: {exc.message}")
    except httpx.TransportError as exc:
        fail(f"cannot reach hsmgate at {url} ({exc}): start it, or point --url (HSMGATE_URL) at it")


def read_input(path: Path) -> bytes:
    """The bytes of ``path`` (``-``: standard input)."""
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def write_output(path: Path | None, data: bytes, *, text: str) -> None:
    """``data`` to ``path``, or ``text`` (its printable form) to standard output."""
    if path is None:
        print(text)
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")


def curve_oid(curve: str | None) -> str | None:
    """An OID given as it is, or a curve name (``secp256r1``, ``Ed25519``…) of the TSB's list."""
    if curve is None or curve[0].isdigit():
        return curve
    by_name = {row.name.lower(): oid for oid, row in CURVES.items()} | {"p-256": "1.2.840.10045.3.1.7",
                                                                         "p-384": "1.3.132.0.34",
                                                                         "p-521": "1.3.132.0.35"}
    oid = by_name.get(curve.lower())
    if oid is None:
        fail(f"unknown curve '{curve}': give its OID, or one of {', '.join(sorted(row.name for row in CURVES.values()))}")
    return oid


# -- keys ------------------------------------------------------------------------------------------


def key_table(key: SignedKeyAttributesDto) -> Table:
    view = key.json_
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    curve = CURVES.get(view.curveOid or "")
    rows = [("label", view.label), ("algorithm", view.algorithm),
            ("size / curve", str(view.keySize) if view.keySize else (curve.name if curve else view.curveOid or "-")),
            ("created", view.createTime),
            ("attributes", ", ".join(name for name, on in view.attributes.model_dump().items() if on) or "-"),
            ("policy (SKA)", "yes" if view.policy else "no"),
            ("public key", view.publicKey or "-"), ("attested by", key.attestationKeyName)]
    for name, shown in rows:
        table.add_row(name, shown)
    return table


def show_key(key: SignedKeyAttributesDto, *, as_json: bool) -> None:
    if as_json:
        console.print_json(key.model_dump_json(by_alias=True))
    else:
        console.print(key_table(key))


@key_app.command("create")
def key_create(
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Label of the new key", show_default=False)],
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", metavar="ALGORITHM",
                                           help="RSA, EC, ED, AES, ChaCha20, HMACSHA256, ML-DSA-65, …")],
    key_size: Annotated[int | None, typer.Option("--size", metavar="BITS", show_default=False,
                                                 help="Key size (RSA, AES, …)")] = None,
    curve: Annotated[str | None, typer.Option("--curve", metavar="CURVE", show_default=False,
                                              help="EC or ED curve: a name (P-256, secp256k1, Ed25519) or an OID")] = None,
    sign: Annotated[bool, typer.Option("--sign/--no-sign", help="The key may sign")] = True,
    decrypt: Annotated[bool, typer.Option("--decrypt/--no-decrypt", help="The key may decrypt (and encrypt)")] = False,
    unwrap: Annotated[bool, typer.Option("--unwrap/--no-unwrap", help="The key may unwrap other keys")] = False,
    destroyable: Annotated[bool, typer.Option("--destroyable/--no-destroyable", help="The key may be deleted")] = True,
    extractable: Annotated[bool, typer.Option("--extractable/--no-extractable",
                                              help="The key may be exported or wrapped")] = False,
    password: PasswordOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a key in the partition and show it."""
    attributes = CreateKeyAttributes(sign=sign, decrypt=decrypt, encrypt=decrypt or None, unwrap=unwrap,
                                     destroyable=destroyable, extractable=extractable)
    with connected(url, api_key) as client:
        key = client.create_key(label, algorithm, key_size=key_size, curve_oid=curve_oid(curve),
                                attributes=attributes, password=password)
    show_key(key, as_json=as_json)


@key_app.command("list")
def key_list(url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None, as_json: JsonOption = False) -> None:
    """List the labels of the partition's keys."""
    with connected(url, api_key) as client:
        labels = client.list_keys()
    if as_json:
        console.print_json(json.dumps(labels))
        return
    table = Table("label", title=f"{len(labels)} keys at {url}")
    for label in labels:
        table.add_row(label)
    console.print(table)


@key_app.command("show")
def key_show(
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Label of the key", show_default=False)],
    password: PasswordOption = None,
    pem: Annotated[bool, typer.Option("--pem", help="Print only the public key, as PEM")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a key: algorithm, size or curve, attributes, public key."""
    with connected(url, api_key) as client:
        key = client.describe_key(label, password=password)
    if pem:
        if key.json_.publicKey is None:
            fail(f"key '{label}' has no public key (a secret key)")
        body = "\n".join(key.json_.publicKey[i:i + 64] for i in range(0, len(key.json_.publicKey), 64))
        print(f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----")
        return
    show_key(key, as_json=as_json)


@key_app.command("delete")
def key_delete(
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Label of the key", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    password: PasswordOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a destroyable key (there is no undo)."""
    if not yes and not typer.confirm(f"Delete key '{label}' at {url}? It cannot be restored"):
        raise typer.Exit(1)
    with connected(url, api_key) as client:
        client.delete_key(label, password=password)
    console.print(f"deleted key '{label}'", highlight=False)


# -- sign and verify -------------------------------------------------------------------------------


def sign(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", show_default=False,
                                                help="What to sign ('-': standard input); several with --batch")],
    key: KeyOption,
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", metavar="ALGORITHM",
                                           help="Signature algorithm: SHA256_WITH_ECDSA, EDDSA, SHA256_WITH_RSA_PSS, …")],
    signature_type: Annotated[str | None, typer.Option("--type", metavar="TYPE", show_default=False,
                                                       help="ECDSA/DSA encoding: DER (default), RAW or ETH")] = None,
    batch: Annotated[bool, typer.Option("--batch", help=f"Sign every FILE, {BATCH_SIZE} per request, into "
                                                        "FILE.sig beside it, with a progress bar")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                help="Write the raw signature here (default: base64 on standard "
                                                     "output)")] = None,
    password: PasswordOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Sign a file with a key of the partition."""
    if not batch:
        if len(files) != 1:
            fail("give one FILE, or --batch to sign several")
        with connected(url, api_key) as client:
            signature = client.sign(key, read_input(files[0]), algorithm, signature_type=signature_type,
                                    password=password)
        write_output(output, signature, text=base64.b64encode(signature).decode())
        return
    if output is not None or any(str(path) == "-" for path in files):
        fail("--batch writes FILE.sig beside each FILE: it takes neither --output nor '-'")
    signed, failed = sign_files(files, key, algorithm, signature_type, password, url, api_key)
    table = Table("file", "result", title=f"{len(signed)} signed, {len(failed)} failed")
    for path, result in [*failed.items(), *((path, "signed") for path in signed)][:50]:
        table.add_row(str(path), result)
    console.print(table)
    if failed:
        raise typer.Exit(1)


def sign_files(files: list[Path], key: str, algorithm: str, signature_type: str | None, password: str | None,
               url: str, api_key: str | None) -> tuple[list[Path], dict[Path, str]]:
    """Sign ``files`` in batches; each signature lands in ``<file>.sig``. Returns the signed files
    and, per failed file, its error."""
    signed: list[Path] = []
    failed: dict[Path, str] = {}
    columns = (TextColumn("signing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with connected(url, api_key) as client, Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("sign", total=len(files))
        for start in range(0, len(files), BATCH_SIZE):
            chunk = files[start:start + BATCH_SIZE]
            items = [SignItem(key, read_input(path), algorithm, signature_type, password) for path in chunk]
            for path, result in zip(chunk, client.sign_batch(items), strict=True):
                if isinstance(result, TsbApiError):
                    failed[path] = f"{result.error_code} {result.reason}: {result.message}"
                else:
                    write_output(path.with_name(path.name + ".sig"), result, text="")
                    signed.append(path)
            progress.advance(task, len(chunk))
    return signed, failed


def verify(
    file: Annotated[Path, typer.Argument(metavar="FILE", show_default=False, help="The signed data ('-': standard input)")],
    signature: Annotated[Path, typer.Option("--signature", "-s", metavar="FILE",
                                            help="The signature: raw bytes, or base64 text as 'hsmgate sign' prints it")],
    key: KeyOption,
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", metavar="ALGORITHM", help="Signature algorithm")],
    password: PasswordOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Check a signature with a key of the partition: exit status 0 when valid, 1 when not."""
    given = read_input(signature)
    try:
        raw = base64.b64decode(given.strip(), validate=True)
    except ValueError:
        raw = given
    with connected(url, api_key) as client:
        valid = client.verify(key, read_input(file), raw, algorithm, password=password)
    console.print("valid" if valid else "[bold red]NOT valid[/]")
    if not valid:
        raise typer.Exit(1)


# -- encrypt and decrypt ---------------------------------------------------------------------------


def encrypt(
    file: Annotated[Path, typer.Argument(metavar="FILE", show_default=False, help="The plaintext ('-': standard input)")],
    key: KeyOption,
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", metavar="ALGORITHM",
                                           help="Cipher: AES_GCM, CHACHA20_AEAD, AES_CBC_NO_PADDING, RSA_PADDING_OAEP_WITH_SHA256, …")],
    aad: Annotated[Path | None, typer.Option("--aad", metavar="FILE", show_default=False,
                                             help="Additional authenticated data (AEAD ciphers)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                help="Write the envelope here (default: standard output)")] = None,
    password: PasswordOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Encrypt a file; prints a JSON envelope (algorithm, ciphertext, IV) that 'hsmgate decrypt' reads."""
    with connected(url, api_key) as client:
        sealed = client.encrypt(key, read_input(file), algorithm, aad=read_input(aad) if aad else None,
                                password=password)
    envelope = {"key": key, "cipherAlgorithm": algorithm, "encryptedPayload": base64.b64encode(sealed.ciphertext).decode(),
                "initializationVector": base64.b64encode(sealed.iv).decode() if sealed.iv else None}
    text = json.dumps(envelope, indent=2)
    write_output(output, text.encode() + b"\n", text=text)


def decrypt(
    file: Annotated[Path, typer.Argument(metavar="FILE", show_default=False,
                                         help="An envelope of 'hsmgate encrypt' ('-': standard input)")],
    aad: Annotated[Path | None, typer.Option("--aad", metavar="FILE", show_default=False,
                                             help="The additional authenticated data it was encrypted with")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                help="Write the plaintext here (default: standard output)")] = None,
    password: PasswordOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Decrypt an envelope of 'hsmgate encrypt' with the key it names."""
    try:
        envelope = json.loads(read_input(file))
        key, algorithm = envelope["key"], envelope["cipherAlgorithm"]
        ciphertext = base64.b64decode(envelope["encryptedPayload"])
        iv = base64.b64decode(envelope["initializationVector"]) if envelope.get("initializationVector") else None
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"{file} is not an envelope of 'hsmgate encrypt' ({exc})")
    with connected(url, api_key) as client:
        plaintext = client.decrypt(key, ciphertext, algorithm, iv=iv, aad=read_input(aad) if aad else None,
                                   password=password)
    if output is None:
        sys.stdout.buffer.write(plaintext)
        sys.stdout.buffer.flush()
    else:
        write_output(output, plaintext, text="")


# -- files (ECIES container) -------------------------------------------------------------------------

#: The suffix 'hsmgate file encrypt' adds, and 'hsmgate file decrypt' takes off.
FILE_SUFFIX = ".encrypted"
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", show_default=False, help="The file to read")]
FileOutputOption = Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                       help="Where to write (default: FILE with '.encrypted' added "
                                                            "or taken off)")]


def stream_file(file: Path, output: Path, url: str, api_key: str | None, *, encrypting: bool, key: str,
                password: str | None) -> int:
    """``file`` through the server into ``output`` (mode 0600), written to ``output.part`` first and
    renamed once complete; returns the bytes written."""
    partial = output.with_name(output.name + ".part")
    try:
        with connected(url, api_key) as client, open(file, "rb") as source, \
                os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as target:
            send = client.encrypt_file if encrypting else client.decrypt_file
            written = send(key, source, target, filename=file.name, password=password)
        partial.replace(output)
    except OSError as exc:
        fail(f"cannot {'read' if exc.filename == str(file) else 'write'} {exc.filename}: {exc.strerror}")
    finally:
        partial.unlink(missing_ok=True)
    return written


@file_app.command("encrypt")
def file_encrypt(file: FileArgument, key: KeyOption, output: FileOutputOption = None, password: PasswordOption = None,
                 url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
    """Encrypt FILE to the EC P-384 key (with derive) as an hsmgate file container, streamed."""
    target = output or file.with_name(file.name + FILE_SUFFIX)
    written = stream_file(file, target, url, api_key, encrypting=True, key=key, password=password)
    console.print(f"{target}: {written} bytes")


@file_app.command("decrypt")
def file_decrypt(file: FileArgument, key: KeyOption, output: FileOutputOption = None, password: PasswordOption = None,
                 url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
    """Decrypt an hsmgate file container with the key; nothing is written unless it authenticates."""
    name = file.name.removesuffix(FILE_SUFFIX) if file.name.endswith(FILE_SUFFIX) else file.name + ".decrypted"
    target = output or file.with_name(name)
    written = stream_file(file, target, url, api_key, encrypting=False, key=key, password=password)
    console.print(f"{target}: {written} bytes")


# -- SKA requests ----------------------------------------------------------------------------------


def request_rows(requests: list[RequestStatusDto]) -> Table:
    # the id and the status whole, however narrow the terminal: the id is what `request show` takes
    table = Table(Column("id", no_wrap=True, min_width=max((len(r.id) for r in requests), default=2)),
                  Column("status", no_wrap=True, min_width=max((len(str(r.status)) for r in requests), default=6)),
                  "executed", "approved by", "waiting for", title=f"{len(requests)} requests")
    for request in requests:
        table.add_row(request.id, str(request.status), request.executionTime or "-", str(len(request.approvedBy)),
                      str(len(request.notYetApprovedBy)))
    return table


@request_app.command("list")
def request_list(
    status: Annotated[list[str] | None, typer.Option("--status", metavar="STATUS", show_default=False,
                                                     help="Only requests of this status (repeat for several): "
                                                          "PENDING, APPROVED, EXECUTED, REJECTED, EXPIRED, …")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List the partition's SKA requests."""
    with connected(url, api_key) as client:
        requests = client.list_requests(status)
    if as_json:
        console.print_json(json.dumps([request.model_dump(mode="json") for request in requests]))
    else:
        console.print(request_rows(requests))


@request_app.command("show")
def request_show(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id", show_default=False)],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show an SKA request: status, approvals, result."""
    with connected(url, api_key) as client:
        request = client.get_request(request_id)
    if as_json:
        console.print_json(request.model_dump_json())
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, shown in (("id", request.id), ("status", str(request.status)), ("executed", request.executionTime or "-"),
                        ("approved by", "\n".join(request.approvedBy) or "-"),
                        ("waiting for", "\n".join(request.notYetApprovedBy) or "-"),
                        ("rejected by", "\n".join(request.rejectedBy) or "-"), ("result", request.result or "-")):
        table.add_row(name, shown)
    console.print(table)


def register(cli: typer.Typer) -> None:
    """Add the commands to the ``hsmgate`` command."""
    cli.add_typer(key_app, name="key")
    cli.command()(sign)
    cli.command()(verify)
    cli.command()(encrypt)
    cli.command()(decrypt)
    cli.add_typer(file_app, name="file")
    cli.add_typer(request_app, name="request")

