"""``hsmgate serve``: run the REST API."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from hsmgate import __version__
from hsmgate.commands.common import err, fail, load_settings
from hsmgate.settings import ConfigError


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
