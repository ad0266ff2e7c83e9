"""``hsmgate serve``: run the REST API."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from hsmgate import __version__
from hsmgate.auth.mtls import check_tls_files, uvicorn_tls_options
from hsmgate.commands.common import err, fail, load_settings
from hsmgate.log_format import configure_logging
from hsmgate.private_files import prepare_data_dir, restrict_umask
from hsmgate.serve_guard import ServeLock
from hsmgate.settings import ConfigError, Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [HSMGATE_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [HSMGATE_PORT, default 8080]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [HSMGATE_DATA_DIR, default ./.hsmgate]")] = None,
    dev: Annotated[bool | None, typer.Option("--dev", help="Development mode: no authentication, loopback only")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML configuration file [HSMGATE_CONFIG]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes behind the one address [HSMGATE_WORKERS, default 1]")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain) [HSMGATE_TLS_CERT]")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert [HSMGATE_TLS_KEY]")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="PEM CA(s) that issue client certificates [HSMGATE_TLS_CLIENT_CA]")] = None,
    tls_client_auth: Annotated[str | None, typer.Option(help="Client certificates: need | want | none [HSMGATE_TLS_CLIENT_AUTH]")] = None,
) -> None:
    """Serve the REST API."""
    restrict_umask()  # every file this process creates: 0600 / 0700 (private_files.py)
    if config is not None:
        os.environ["HSMGATE_CONFIG"] = str(config)
    settings = load_settings(host=host, port=port, data_dir=data_dir, dev=dev, workers=workers, tls_cert=tls_cert,
                             tls_key=tls_key, tls_client_ca=tls_client_ca, tls_client_auth=tls_client_auth)
    try:
        settings.check_bind()
        check_tls_files(settings)
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    if not settings.dev and not settings.is_loopback and settings.tls_cert is None:
        announce(settings, f"WARNING: serving plain HTTP on {settings.host}: API keys and bearer tokens cross "
                 "the network in clear text. Set HSMGATE_TLS_CERT / HSMGATE_TLS_KEY.", warning=True)
    if settings.dev:
        announce(settings, "WARNING: dev mode — no authentication; every caller on this machine can use "
                 "every key. Never use dev mode in production.", warning=True)
    from hsmgate.app import create_app
    from hsmgate.hsm.base import HsmError

    try:
        prepare_data_dir(settings.data_dir)
        lock = ServeLock.acquire(settings.data_dir)  # one serve per data dir, workers included (serve_guard.py)
    except ConfigError as exc:
        fail(str(exc))
    if settings.workers > 1:
        _serve_workers(settings, lock)
        return
    try:
        app = create_app(settings)
    except (ConfigError, HsmError) as exc:
        fail(str(exc))
    import uvicorn

    from hsmgate.serving import settle_heap

    settle_heap()
    announce(settings, f"hsmgate {__version__}: backend={settings.backend} partition={settings.partition} "
             f"on {_scheme(settings)}://{settings.host}:{settings.port}  (Swagger UI: /swagger-ui/index.html)")
    uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))


def announce(settings: Settings, text: str, *, warning: bool = False) -> None:
    """A start-up line for the operator: on the terminal (text logs), or a log record when the log
    is JSON, so that every line of the output is one JSON object."""
    if settings.log_format == "json":
        logging.getLogger("hsmgate").log(logging.WARNING if warning else logging.INFO, text)
        return
    err.print(f"[bold yellow]{text}[/]" if warning else text, highlight=False)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments besides host and port, for one process and for every
    worker alike (TLS options belong here too)."""
    # log_config None: uvicorn installs no handlers of its own, its records reach the escaping
    # formatter of hsmgate/log_format.py on the root logger
    return {"log_level": settings.log_level, "log_config": None, "access_log": False, **uvicorn_tls_options(settings)}


def _scheme(settings: Settings) -> str:
    return "https" if settings.tls_cert else "http"


def _serve_workers(settings: Settings, lock: ServeLock) -> None:
    """``--workers N``: N processes, one SO_REUSEPORT socket each (see ``hsmgate.serving``), all
    holding ``lock``."""
    from hsmgate.hsm.base import HsmError
    from hsmgate.serving import Supervisor, prepare

    try:
        prepare(settings)
    except (ConfigError, HsmError) as exc:
        fail(str(exc))
    supervisor = Supervisor(settings, uvicorn_options(settings), settings.workers, lock)
    announce(settings, f"hsmgate {__version__}: backend={settings.backend} partition={settings.partition} "
             f"on {_scheme(settings)}://{settings.host}:{settings.port} with {settings.workers} workers "
             f"({'SO_REUSEPORT' if supervisor.reuseport else 'shared socket'})")
    try:
        status = supervisor.run()
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    raise typer.Exit(status)
