"""``hsmgate audit verify | export | checkpoint``: the tamper-evident audit log.

``verify`` checks the chains, the signed checkpoints, a checkpoint at least every
HSMGATE_AUDIT_CHECKPOINT_INTERVAL records (``--interval``), and holds the database against the
checkpoints anchored outside it (``--anchors``, default HSMGATE_AUDIT_ANCHOR_FILE when it exists;
``domain/audit/verification.py``). Exit status: 0 all verified; 1 a record was changed, removed
or reordered, a checkpoint does not verify, is missing or contradicts its anchor, or the end of a
chain was cut off (each finding is printed with its partition and record number); 3 the chains are
intact but something could not be checked (no attestation public key: pass ``--public-key``; no
anchor file); 2 usage or configuration error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from hsmgate.commands.common import fail, load_settings
from hsmgate.settings import ConfigError, Settings

app = typer.Typer(help="The tamper-evident audit log: verify the hash chains and signed checkpoints, export.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(metavar="FILE", help="TOML configuration file (HSMGATE_CONFIG)")]
DataDirOption = Annotated[Path | None, typer.Option(metavar="DIR", help="Data directory of the server (HSMGATE_DATA_DIR)")]
PartitionOption = Annotated[str | None, typer.Option(metavar="NAME", help="Only this partition (default: every partition)")]


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    if config is not None:
        os.environ["HSMGATE_CONFIG"] = str(config)
    return load_settings(data_dir=data_dir)


def _database(settings: Settings):  # type: ignore[no-untyped-def]
    from hsmgate.bootstrap import open_database

    if not settings.database_url and not (settings.data_dir / "state.db").exists():
        fail(f"no state database in {settings.data_dir}: point --data-dir (HSMGATE_DATA_DIR) at the data "
             "directory of the server, or set HSMGATE_DATABASE_URL")
    try:
        return open_database(settings)
    except ConfigError as exc:
        fail(str(exc))


def _private(path: str, flags: int) -> int:
    """``open`` opener: a new file is created with mode 0600."""
    return os.open(path, flags, 0o600)


def _read_public_key(path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
        key = (serialization.load_der_public_key(data) if not data.lstrip().startswith(b"-----")
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError) as exc:
        fail(f"--public-key {path}: not a PEM or DER public key ({exc})")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _attestation_public_keys(settings: Settings, db, names: list[str]) -> dict[str, bytes | str]:  # type: ignore[no-untyped-def]
    """Each partition's attestation public key, read from its backend; a string says why not."""
    from hsmgate.bootstrap import open_partition, served_partitions
    from hsmgate.domain.audit.recording import AttestationSigner
    from hsmgate.domain.errors import TsbError
    from hsmgate.hsm.base import HsmError
    from hsmgate.store.soft_keys import SoftKeyRepository

    keys: dict[str, bytes | str] = {name: "the partition is not configured any more" for name in names}
    try:
        served = {s.partition: s for s in served_partitions(settings, db)}
    except ConfigError as exc:
        return {name: str(exc) for name in names}
    for name in names:
        if name not in served:  # removed; a soft partition's attestation key is kept (partition remove)
            served[name] = settings.model_copy(update={"partition": name, "backend": "soft"})
            if settings.attestation_key_name not in SoftKeyRepository(db, name).labels():
                continue
        try:
            partition = open_partition(served[name], db)
            try:
                keys[name] = AttestationSigner(partition, settings.attestation_key_name).public_key_der()
            finally:
                partition.close()
        except (HsmError, TsbError, ConfigError) as exc:
            keys[name] = f"cannot open the backend: {exc}"
    return keys


@app.command("verify")
def verify(
    partition: PartitionOption = None,
    input_file: Annotated[Path | None, typer.Option("--input", metavar="FILE", help="Verify an export (JSON lines) instead of the database")] = None,
    public_key: Annotated[Path | None, typer.Option(metavar="FILE", help="Attestation public key (PEM/DER) to check signatures with; "
                                                         "needs --partition, or an --input of one partition")] = None,
    anchors: Annotated[list[Path] | None, typer.Option(help="Anchor file (JSON lines, syslog prefixes allowed) to "
                                                            "hold the log against; repeat it for the files of several "
                                                            "instances [default: HSMGATE_AUDIT_ANCHOR_FILE when it "
                                                            "exists; with --input: none]")] = None,
    interval: Annotated[int | None, typer.Option(min=1, help="Checkpoint interval the log was written with "
                                                             "[HSMGATE_AUDIT_CHECKPOINT_INTERVAL; with --input: "
                                                             "not checked]")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check every record's hash and link, every checkpoint's signature, a checkpoint every
    --interval records, and the checkpoints anchored outside the database."""
    from hsmgate.domain.audit.verification import verify_chain
    from hsmgate.store.audit import AuditRepository

    given_key = _read_public_key(public_key) if public_key is not None else None
    reports = []
    if input_file is not None:
        records, checkpoints = _read_export(input_file)
        anchored = _read_anchors(anchors) if anchors else None
        names = sorted(set(records) | set(checkpoints) | set(anchored or {}))
        if partition is not None:
            names = [n for n in names if n == partition]
        if given_key is not None and len(names) > 1:
            fail("--public-key checks one partition: add --partition")
        for name in names:
            reports.append(verify_chain(name, records.get(name, []), checkpoints.get(name, []),
                                        public_key_der=given_key, interval=interval,
                                        anchors=anchored.get(name, []) if anchored is not None else None))
    else:
        if given_key is not None and partition is None:
            fail("--public-key checks one partition: add --partition")
        settings = _settings(config, data_dir)
        anchor_file = settings.resolved_audit_anchor_file
        files = anchors or ([anchor_file] if anchor_file.exists() else [])
        anchored = _read_anchors(files) if files else None
        db = _database(settings)
        try:
            repository = AuditRepository(db)
            names = [partition] if partition is not None else sorted(set(repository.partitions())
                                                                     | set(anchored or {}))
            keys: dict[str, bytes | str] = {}
            if given_key is not None:
                keys = {names[0]: given_key}
            else:
                keys = _attestation_public_keys(settings, db, names)
            for name in names:
                key = keys.get(name)
                report = verify_chain(name, repository.records(name), repository.checkpoints(name),
                                      public_key_der=key if isinstance(key, bytes) else None,
                                      head=repository.head(name),
                                      interval=interval or settings.audit_checkpoint_interval,
                                      anchors=anchored.get(name, []) if anchored is not None else None)
                if isinstance(key, str) and (report.checkpoints or report.anchors):
                    report.notes.append(f"partition {name}: checkpoint signatures not checked: {key}")
                if anchored is None and report.checkpoints:
                    report.notes.append(f"partition {name}: checkpoints not held against anchors (no anchor file "
                                        f"{anchor_file}; name one with --anchors)")
                reports.append(report)
        finally:
            db.dispose()
    _print_and_exit(reports)


def _read_anchors(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """The anchors of every file, by partition (one line each: a line in two files counts once)."""
    from hsmgate.store.audit_anchors import AnchorError, read_anchors

    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        torn: list[int] = []
        try:
            found = read_anchors(path, torn)
        except AnchorError as exc:
            fail(str(exc))
        if torn:
            print(f"anchor file {path}: line{'s' if len(torn) > 1 else ''} {', '.join(map(str, torn))} cut short "
                  "(a write interrupted by a full disk or a crash), skipped: the checkpoint is not anchored")
        for partition, items in found.items():
            for item in items:
                merged.setdefault(partition, {})[json.dumps(item, sort_keys=True)] = item
    return {partition: list(items.values()) for partition, items in merged.items()}


def _print_and_exit(reports: list[Any]) -> None:
    problems = [p for r in reports for p in r.problems]
    unchecked = [n for r in reports for n in r.notes]
    for report in reports:
        status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        anchored = "" if report.anchors is None else f"; {report.anchors} anchored checkpoints"
        print(f"partition {report.partition}: {report.records} records, {report.checkpoints} checkpoints "
              f"({report.checkpoints_verified} signatures verified): {status}{anchored}")
    for problem in problems:
        print(f"TAMPERED: {problem}")
    for note in unchecked:
        print(f"NOT VERIFIED: {note}")
    if not reports:
        print("no audit records")
    if problems:
        print(f"audit verification FAILED: {len(problems)} problem(s)", file=sys.stderr)
        raise typer.Exit(1)
    if unchecked:
        print("chains intact, but not every checkpoint signature was checked", file=sys.stderr)
        raise typer.Exit(3)


def _read_export(path: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    checkpoints: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            kind = item.pop("type")
            target = records if kind == "record" else checkpoints if kind == "checkpoint" else None
            if target is None:
                raise ValueError(f"unknown type {kind!r}")
            target[item["partition"]].append(item)
        except (ValueError, KeyError, AttributeError) as exc:
            fail(f"{path} line {number}: not an audit export line ({exc})")
    return records, checkpoints


def export_lines(repository: Any, names: list[str], after: int = 0) -> Iterator[str]:
    """JSON lines: each partition's records in chain order (``type: record``, the hashed fields —
    ``ska_request_id`` only when set — and ``hash``), then its checkpoints (``type: checkpoint``)."""
    from hsmgate.domain.audit.chain import hashed_values

    for name in names:
        for record in repository.records(name, after=after):
            line = {"type": "record", **hashed_values(record), "hash": record["hash"]}
            yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        for checkpoint in repository.checkpoints(name):
            if checkpoint["seq"] > after:
                yield json.dumps({"type": "checkpoint", **checkpoint}, ensure_ascii=False, separators=(",", ":"))


@app.command("export")
def export(
    partition: PartitionOption = None,
    output: Annotated[Path | None, typer.Option(metavar="FILE", help="Write to this file (default: standard output)")] = None,
    after: Annotated[int, typer.Option(metavar="N", help="Only records after this sequence number")] = 0,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write the audit log as JSON lines (verifiable offline with 'hsmgate audit verify --input')."""
    from hsmgate.store.audit import AuditRepository

    settings = _settings(config, data_dir)
    db = _database(settings)
    try:
        repository = AuditRepository(db)
        names = [partition] if partition is not None else repository.partitions()
        handle: IO[str] = open(output, "w", opener=_private) if output is not None else sys.stdout  # noqa: SIM115
        try:
            for line in export_lines(repository, names, after):
                handle.write(line + "\n")
        finally:
            if output is not None:
                handle.close()
    finally:
        db.dispose()


@app.command("checkpoint")
def checkpoint(
    partition: PartitionOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Sign each chain's current head now with its partition's attestation key."""
    from hsmgate.bootstrap import attach_signers, audit_trail, build_gateway
    from hsmgate.hsm.base import HsmError

    settings = _settings(config, data_dir)
    db = _database(settings)
    try:
        try:
            gateway = build_gateway(settings, db)
        except (ConfigError, HsmError) as exc:
            fail(str(exc))
        try:
            try:
                trail = audit_trail(settings, db)  # anchored like the server's checkpoints
            except ConfigError as exc:
                fail(str(exc))
            attach_signers(trail, gateway)
            names = [partition] if partition is not None else gateway.names()
            for name in names:
                if name not in gateway.names():
                    fail(f"partition '{name}' is not configured")
                signed = trail.checkpoint_if_moved(name)
                head = trail.repository.head(name)
                print(f"partition {name}: " + (f"checkpoint signed at record {signed['seq']}" if signed
                                               else f"nothing to sign (head {head.seq} already signed or empty)"))
        finally:
            gateway.close()
    finally:
        db.dispose()
