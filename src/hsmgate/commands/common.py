"""Helpers shared by the CLI commands: one-line failures and settings loading."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from hsmgate.settings import ConfigError, Settings

err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print one line and exit with status 2 (no traceback)."""
    err.print(f"[bold red]hsmgate:[/] {message}", highlight=False, soft_wrap=True)  # one line, however long
    raise typer.Exit(2)


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, TOML, env and the given non-None overrides; fails with one line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        fail(f"invalid setting {field}: {first['msg']}")
    except ConfigError as exc:
        fail(str(exc))
