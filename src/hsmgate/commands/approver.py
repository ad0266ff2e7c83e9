"""``hsmgate approver register | tasks | show | approve | reject``: an approver's terminal client
(docs/approvers.md, "The command line").

``register`` redeems a one-time code (``/v1/approver/onboard`` with a fresh random 32-character
transport password), opens the PKCS#12 with the backup password and keeps the key in a file (0600,
encrypted with a key password) or on a PKCS#11 token. The other commands authenticate each call
with a fresh timestamp signed by that key (``/v1/filteredAllApprovalTask``, ``/v1/task``) and
sign the decoded ``approvalToBeSigned`` to approve (``/v1/approval``). Every refusal is one line,
exit status 2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from rich.table import Table

from hsmgate.api.wire.ska import TaskDto
from hsmgate.client import ApproverProof, HsmgateClient
from hsmgate.commands.approver_store import ApproverKey, FileKey, KeyStoreError, TokenKey
from hsmgate.commands.common import fail
from hsmgate.commands.remote import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connected, console
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, Operation, TokenFormatError
from hsmgate.domain.ska.requests import KINDS

app = typer.Typer(help="An approver's client: register with a one-time code, list, show, approve and reject "
                       "tasks.", no_args_is_help=True)

KeyFileOption = Annotated[Path | None, typer.Option(
    "--key-file", envvar="HSMGATE_APPROVER_KEY_FILE", metavar="PATH", show_default=False,
    help="The approver's key file (0600, encrypted with the key password)")]
KeyPasswordOption = Annotated[str | None, typer.Option(
    "--key-password", envvar="HSMGATE_APPROVER_KEY_PASSWORD", metavar="PASSWORD", show_default=False,
    help="Password of the key file (asked for when not given; the environment keeps it out of the process list)")]
ModuleOption = Annotated[str | None, typer.Option(
    "--pkcs11-module", envvar="HSMGATE_APPROVER_PKCS11_MODULE", metavar="PATH", show_default=False,
    help="Keep the key on a token of this PKCS#11 module instead of a file")]
TokenOption = Annotated[str | None, typer.Option(
    "--token-label", envvar="HSMGATE_APPROVER_TOKEN_LABEL", metavar="LABEL", show_default=False,
    help="The token's label")]
PinOption = Annotated[str | None, typer.Option(
    "--pin", envvar="HSMGATE_APPROVER_PIN", metavar="PIN", show_default=False,
    help="The token's user PIN (asked for when not given)")]
KeyLabelOption = Annotated[str, typer.Option(
    "--key-label", envvar="HSMGATE_APPROVER_KEY_LABEL", metavar="LABEL", help="The key's label on the token")]
TaskArgument = Annotated[str, typer.Argument(metavar="TASK_ID", help="The task's id (hsmgate approver tasks)",
                                             show_default=False)]

#: The level-3 ``signed…`` field of each request kind, and the field naming its key.
_KINDS_BY_FIELD = {spec.signed_field: (kind, spec) for kind, spec in reversed(list(KINDS.items()))}
_OPERATIONS = {Operation.USE: "use the key", Operation.BLOCK: "block the key", Operation.UNBLOCK: "unblock the key",
               Operation.MODIFY: "replace the key's policy"}


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """Where the approver's key is: a file, or a PKCS#11 token."""

    key_file: Path | None
    key_password: str | None
    module: str | None
    token_label: str | None
    pin: str | None
    key_label: str

    def token(self) -> TokenKey:
        if not self.token_label:
            fail("--token-label (HSMGATE_APPROVER_TOKEN_LABEL) names the token of --pkcs11-module")
        pin = self.pin or typer.prompt("Token PIN", hide_input=True)
        try:
            return TokenKey(self.module or "", self.token_label, pin, self.key_label)
        except KeyStoreError as exc:
            fail(str(exc))

    def file(self) -> Path:
        if self.key_file is None:
            fail("give --key-file (HSMGATE_APPROVER_KEY_FILE), or --pkcs11-module and --token-label")
        return self.key_file

    def password(self, *, confirm: bool = False) -> str:
        return self.key_password or typer.prompt("Key password", hide_input=True, confirmation_prompt=confirm)


@contextmanager
def approver_key(options: KeyOptions) -> Iterator[ApproverKey]:
    """The approver's key, opened; one line and exit 2 when it cannot be."""
    try:
        if options.module:
            token = options.token().open()
            try:
                yield token
            finally:
                token.close()
        else:
            yield FileKey.load(options.file(), options.password())
    except KeyStoreError as exc:
        fail(str(exc))


def proof(key: ApproverKey) -> ApproverProof:
    """A fresh timestamp (ISO-8601, milliseconds, UTC) signed with the approver's key."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return ApproverProof(stamp, key.sign(stamp.encode("ascii")), certificate=key.certificate,
                         public_key=None if key.certificate else key.public_key)


def transport_password() -> str:
    """32 random letters and digits: an AES-256 key of 32 bytes."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@app.command()
def register(
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="The approver's name, as the key manager "
                                                                       "created it", show_default=False)],
    code: Annotated[str | None, typer.Option("--code", metavar="CODE", show_default=False,
                                             help="The one-time code (asked for when not given)")] = None,
    backup_password: Annotated[str | None, typer.Option(
        "--backup-password", envvar="HSMGATE_APPROVER_BACKUP_PASSWORD", metavar="PASSWORD", show_default=False,
        help="The backup password that protects the PKCS#12 (asked for when not given)")] = None,
    key_file: KeyFileOption = None, key_password: KeyPasswordOption = None, module: ModuleOption = None,
    token_label: TokenOption = None, pin: PinOption = None, key_label: KeyLabelOption = "approver",
    url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None,
) -> None:
    """Onboard: redeem the one-time code and keep the approver's key in a file or on a token."""
    options = KeyOptions(key_file, key_password, module, token_label, pin, key_label)
    if not module and options.file().exists():
        fail(f"{options.file()} exists already: choose another --key-file (it is never overwritten)")
    code = code or typer.prompt("One-time code", hide_input=True)
    backup = backup_password or typer.prompt("Backup password", hide_input=True)
    transport = transport_password()
    with connected(url, api_key) as client:
        answer = client.onboard_approver(name, code, transport)
    try:
        iv = base64.b64decode(answer.initializationVector, validate=True)
        p12 = AESGCM(transport.encode("ascii")).decrypt(iv, base64.b64decode(answer.encryptedPayload, validate=True),
                                                        None)
    except (ValueError, binascii.Error):
        fail(f"{url} answered an onboarding payload that does not decrypt: is it hsmgate or a TSB?")
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(p12, backup.encode("utf-8"))
    except ValueError:
        fail("the backup password does not open the approver's PKCS#12; the code is used up now: "
             "ask the key manager for a new one (restoreFromBackup)")
    if not isinstance(key, rsa.RSAPrivateKey) or certificate is None:
        fail("the approver's PKCS#12 holds no RSA key and certificate")
    try:
        if module:
            token = options.token().store(key)
            token.close()
            where = f"token '{token_label}', key '{key_label}'"
        else:
            FileKey.save(options.file(), key, certificate, options.password(confirm=True))
            where = str(options.file())
    except KeyStoreError as exc:
        fail(str(exc))
    console.print(f"approver [bold]{name}[/] registered; the key is in {where}", highlight=False)


def _kind_and_key(task: TaskDto) -> tuple[str, str]:
    for field, (kind, spec) in _KINDS_BY_FIELD.items():
        envelope = getattr(task, field, None)
        if envelope:
            inner = envelope.get(spec.envelope) or {}
            return kind.value, str(inner.get(spec.key_field) or "-")
    return "-", "-"


def _payload_text(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return repr(text)[1:-1]
    return f"{len(payload)} bytes: {payload[:32].hex()}{'…' if len(payload) > 32 else ''}"


@app.command()
def tasks(key_file: KeyFileOption = None, key_password: KeyPasswordOption = None, module: ModuleOption = None,
          token_label: TokenOption = None, pin: PinOption = None, key_label: KeyLabelOption = "approver",
          as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
    """List the approver's open tasks."""
    options = KeyOptions(key_file, key_password, module, token_label, pin, key_label)
    with approver_key(options) as key, connected(url, api_key) as client:
        found = client.approval_tasks(proof(key))
    if as_json:
        console.print_json(json.dumps([task.model_dump(mode="json", exclude_none=True) for task in found]))
        return
    table = Table("task", "kind", "key", "payload", title=f"{len(found)} open tasks")
    for task in found:
        kind, label = _kind_and_key(task)
        table.add_row(task.id, kind, label, _payload_text(base64.b64decode(task.payload or "")))
    console.print(table)


def _task(client: HsmgateClient, key: ApproverKey, task_id: str) -> TaskDto:
    found = client.approval_tasks(proof(key), task_id=task_id)
    if not found:
        fail(f"no open task '{task_id}' for this approver (hsmgate approver tasks lists them)")
    return found[0]


def describe(task: TaskDto) -> list[tuple[str, str]]:
    """What approving ``task`` allows, in plain words, from its decoded ``approvalToBeSigned``."""
    token_bytes = base64.b64decode(task.approvalToBeSigned)
    try:
        token = ApprovalToBeSigned.decode(token_bytes)
    except TokenFormatError as exc:
        fail(f"task '{task.id}' carries an approvalToBeSigned that does not decode: {exc}")
    kind, label = _kind_and_key(task)
    rows = [("task", task.id), ("request", kind), ("key", token.label or label),
            ("approving allows", f"{_OPERATIONS[token.operation]} once, for this payload")]
    rows.append(("payload", _payload_text(token.payload)))
    rows.append(("payload SHA-256", hashlib.sha256(token.payload).hexdigest()))
    stamp = token.hsm_timestamp
    if stamp is None:
        rows.append(("time", "time-less token: no timelock or timeout applies"))
    else:
        rows.append(("requested at", f"{stamp.moment.isoformat()} (HSM timestamp signed by key '{stamp.key_name}')"))
    if task.metaData:
        rows.append(("metadata", _payload_text(base64.b64decode(task.metaData))))
    return rows


@app.command()
def show(task_id: TaskArgument, key_file: KeyFileOption = None, key_password: KeyPasswordOption = None,
         module: ModuleOption = None, token_label: TokenOption = None, pin: PinOption = None,
         key_label: KeyLabelOption = "approver", as_json: JsonOption = False, url: UrlOption = DEFAULT_URL,
         api_key: ApiKeyOption = None) -> None:
    """Show a task: what approving it allows, decoded from its approvalToBeSigned."""
    options = KeyOptions(key_file, key_password, module, token_label, pin, key_label)
    with approver_key(options) as key, connected(url, api_key) as client:
        task = _task(client, key, task_id)
    rows = describe(task)
    if as_json:
        console.print_json(json.dumps(dict(rows)))
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, shown in rows:
        table.add_row(name, shown)
    console.print(table)


@app.command()
def approve(task_id: TaskArgument, key_file: KeyFileOption = None, key_password: KeyPasswordOption = None,
            module: ModuleOption = None, token_label: TokenOption = None, pin: PinOption = None,
            key_label: KeyLabelOption = "approver", url: UrlOption = DEFAULT_URL,
            api_key: ApiKeyOption = None) -> None:
    """Approve a task: sign its decoded approvalToBeSigned."""
    options = KeyOptions(key_file, key_password, module, token_label, pin, key_label)
    with approver_key(options) as key, connected(url, api_key) as client:
        task = _task(client, key, task_id)
        token = base64.b64decode(task.approvalToBeSigned)
        client.approve_task(task.id, token, key.sign(token), certificate=key.certificate,
                            public_key=None if key.certificate else key.public_key)
    console.print(f"task {task_id} approved", highlight=False)


@app.command()
def reject(task_id: TaskArgument, key_file: KeyFileOption = None, key_password: KeyPasswordOption = None,
           module: ModuleOption = None, token_label: TokenOption = None, pin: PinOption = None,
           key_label: KeyLabelOption = "approver", url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
    """Reject (delete) a task."""
    options = KeyOptions(key_file, key_password, module, token_label, pin, key_label)
    with approver_key(options) as key, connected(url, api_key) as client:
        client.reject_task(task_id, proof(key))
    console.print(f"task {task_id} rejected", highlight=False)
