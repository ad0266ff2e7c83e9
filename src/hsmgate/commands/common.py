"""Helpers shared by the CLI commands: one-line failures, ``--debug`` and settings loading."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from hsmgate.settings import ConfigError, Settings

err = Console(stderr=True)


@dataclass(slots=True)
class CliState:
    """Options of the ``hsmgate`` command itself, set before a sub-command runs."""

    debug: bool = False


state = CliState()


def fail(message: str) -> NoReturn:
    """Print one line and exit with status 2 (no traceback; with ``hsmgate --debug``, the traceback of
    the exception being handled is printed first)."""
    if state.debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    err.print(f"[bold red]hsmgate:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(2)


def fail_unexpected(exc: BaseException) -> NoReturn:
    """An error no command expected (a bug, or a failure nobody put into words yet): its type and
    the first line of its message, never its locals or the values it was called with."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    shown = first if len(first) <= 300 else first[:300] + "…"
    fail(f"unexpected {type(exc).__name__}{': ' + shown if shown else ''} "
         "(run 'hsmgate --debug …' for the traceback, and please report it)")


def setting_problem(exc: ValidationError) -> str:
    """The first error of a Settings validation as one line naming the environment variable."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a rule across settings: its message names them
        return message
    field = str(first["loc"][0])
    detail = ".".join(str(p) for p in first["loc"][1:])
    name = f"HSMGATE_{field.upper()}" + (f" ({detail})" if detail else "")
    return f"invalid setting {name}: {message}"  # the value is not repeated: it may be a secret


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, TOML, env and the given non-None overrides; fails with one line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail(setting_problem(exc))
    except ConfigError as exc:
        fail(str(exc))
