"""``hsmgate partition add | list | remove``: the partitions kept in the state database.

Changes take effect when ``hsmgate serve`` (re)starts.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hsmgate.commands.common import fail, load_settings
from hsmgate.settings import ConfigError, Settings

app = typer.Typer(help="Partitions (1:n mode): each with its own backend, kept in the state database.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(metavar="FILE", help="TOML configuration file (HSMGATE_CONFIG)")]
DataDirOption = Annotated[Path | None, typer.Option(metavar="DIR", help="Data directory of the server (HSMGATE_DATA_DIR)")]


class Backend(enum.StrEnum):
    soft = "soft"
    pkcs11 = "pkcs11"


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    if config is not None:
        os.environ["HSMGATE_CONFIG"] = str(config)
    return load_settings(data_dir=data_dir)


def _registry(settings: Settings, *, master_key: bool):  # type: ignore[no-untyped-def]
    from hsmgate.bootstrap import open_database
    from hsmgate.domain.partitions import PartitionRegistry
    from hsmgate.preflight import prepare_data_dir
    from hsmgate.store.partitions import PartitionRepository

    try:
        prepare_data_dir(settings.data_dir)
        db = open_database(settings)
        key = settings.load_master_key() if master_key else None
    except ConfigError as exc:
        fail(str(exc))
    return PartitionRegistry(PartitionRepository(db), key), db


def _read_pin(pin_file: Path) -> str:
    try:
        pin = sys.stdin.readline() if str(pin_file) == "-" else pin_file.read_text()
    except OSError as exc:
        fail(f"cannot read --pin-file {pin_file}: {exc.strerror}")
    return pin.strip()


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Partition name (what JWT 'partition' claims and mTLS mappings name)", show_default=False)],
    backend: Annotated[Backend, typer.Option(help="soft: built-in token; pkcs11: a token of a PKCS#11 module")],
    module: Annotated[str | None, typer.Option(metavar="PATH", help="PKCS#11 module (.so) path")] = None,
    token_label: Annotated[str | None, typer.Option(metavar="LABEL", help="PKCS#11 token label")] = None,
    slot: Annotated[int | None, typer.Option(metavar="ID", help="PKCS#11 slot id (instead of the token label)")] = None,
    pin_file: Annotated[Path | None, typer.Option(metavar="FILE", help="File holding the user PIN ('-': read standard input)")] = None,
    pool_size: Annotated[int | None, typer.Option(metavar="N", help="PKCS#11 sessions to keep open (default: HSMGATE_PKCS11_POOL_SIZE)")] = None,
    check: Annotated[bool, typer.Option(help="Open the backend once before saving")] = True,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a partition; its PIN is stored sealed under the master key."""
    from hsmgate.domain.partitions import PartitionConfig, PartitionError

    settings = _settings(config, data_dir)
    if name == settings.partition:
        fail(f"'{name}' is the partition of the settings (HSMGATE_PARTITION); choose another name")
    pin = _read_pin(pin_file) if pin_file is not None else None
    partition_config = PartitionConfig(name=name, backend=backend.value, module=module, token_label=token_label,
                                       slot=slot, pool_size=pool_size, pin=pin)
    registry, db = _registry(settings, master_key=pin is not None)
    try:
        if check and backend is Backend.pkcs11:
            _check_pkcs11(settings, partition_config, db)
        registry.add(partition_config)
    except PartitionError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    print(f"partition {name} added ({backend.value}); restart hsmgate to serve it")


def _check_pkcs11(settings: Settings, config, db) -> None:  # type: ignore[no-untyped-def]
    from hsmgate.bootstrap import open_partition, partition_settings
    from hsmgate.domain.partitions import PartitionError
    from hsmgate.hsm.base import HsmError

    if not config.pin:
        raise PartitionError("a pkcs11 partition needs the user PIN (--pin-file)")
    try:
        partition = open_partition(partition_settings(settings, config), db)
        try:
            partition.list_labels()
        finally:
            partition.close()
    except (HsmError, ConfigError) as exc:
        raise PartitionError(f"cannot open the token: {exc} (use --no-check to save it anyway)") from None


@app.command("list")
def list_(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """List the partitions (never their PINs)."""
    settings = _settings(config, data_dir)
    registry, db = _registry(settings, master_key=False)
    try:
        print(f"{settings.partition}\t{settings.backend}\t(settings)")
        for partition in registry.list():
            where = ""
            if partition.backend == "pkcs11":
                token = partition.token_label if partition.token_label else f"slot {partition.slot}"
                where = f"{partition.module} token {token}"
            print(f"{partition.name}\t{partition.backend}\t{where}".rstrip())
    finally:
        db.dispose()


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Partition name", show_default=False)],
    purge: Annotated[bool, typer.Option(help="Also destroy the soft token's keys of this partition "
                                                            "(its attestation key is kept for the audit log)")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove a database partition (its audit records stay)."""
    from hsmgate.domain.partitions import PartitionError

    settings = _settings(config, data_dir)
    registry, db = _registry(settings, master_key=False)
    try:
        purged = registry.remove(name, purge=purge, attestation_key_name=settings.attestation_key_name,
                                 timestamp_key_name=settings.timestamp_key_name,
                                 internal_labels=(settings.approver_backup_key_name,))
    except PartitionError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    print(f"partition {name} removed" + (f"; {purged} key(s) destroyed" if purged else ""))
