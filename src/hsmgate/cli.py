"""The ``hsmgate`` command: serve the API and operator tools. Thin: it calls app and domain code."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from hsmgate import __version__
from hsmgate.settings import ConfigError, Settings

cli = typer.Typer(help="hsmgate: REST gateway to hardware security modules (Securosys TSB wire format).",
                  no_args_is_help=True, add_completion=False)
err = Console(stderr=True)


def fail(message: str) -> None:
    """Print one line and exit with status 2 (no traceback)."""
    err.print(f"[bold red]hsmgate:[/] {message}", highlight=False)
    raise typer.Exit(2)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        fail(f"invalid setting {field}: {first['msg']}")
    except ConfigError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [HSMGATE_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [HSMGATE_PORT, default 8080]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [HSMGATE_DATA_DIR, default ./.hsmgate]")] = None,
    dev: Annotated[bool | None, typer.Option("--dev", help="Development mode: no authentication, loopback only")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML configuration file [HSMGATE_CONFIG]")] = None,
) -> None:
    """Serve the REST API."""
    if config is not None:
        os.environ["HSMGATE_CONFIG"] = str(config)
    settings = load_settings(host=host, port=port, data_dir=data_dir, dev=dev)
    try:
        settings.check_bind()
    except ConfigError as exc:
        fail(str(exc))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.dev:
        err.print("[bold yellow]WARNING: dev mode — no authentication; every caller on this machine can use "
                  "every key. Never use dev mode in production.[/]")
    from hsmgate.app import create_app
    from hsmgate.hsm.base import HsmError

    try:
        app = create_app(settings)
    except (ConfigError, HsmError) as exc:
        fail(str(exc))
    import uvicorn

    err.print(f"hsmgate {__version__}: backend={settings.backend} partition={settings.partition} "
              f"on http://{settings.host}:{settings.port}  (Swagger UI: /swagger-ui/index.html)", highlight=False)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False)


@cli.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
