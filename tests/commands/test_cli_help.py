"""The command line reads like a person wrote it: every command's help without type placeholders,
``{name}`` arguments or reStructuredText markup; an unexpected error is one line (``--debug`` shows
the traceback)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from hsmgate import cli as cli_module
from hsmgate.cli import cli
from hsmgate.commands import serve as serve_module


def command_paths(command: typer.core.TyperCommand | typer.core.TyperGroup,
                  path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, child in getattr(command, "commands", {}).items():
        yield from command_paths(child, (*path, name))


PATHS = list(command_paths(typer.main.get_command(cli)))


def test_every_command_is_walked() -> None:
    assert {("serve",), ("audit", "verify"), ("partition", "add"), ("pkcs11", "list"), ("token", "issue")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "hsmgate")
def test_help_reads_like_prose(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert not re.search(r"<(bool|str|int|path|float)>", text), text
    assert not re.search(r"\{[A-Za-z_]+\}", text), text  # typer's placeholder for an argument
    assert "``" not in text and ":func:" not in text and ":class:" not in text, text
    assert "Usage:" in text


def test_serve_help_names_the_environment_variables() -> None:
    text = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for option, metavar, variable in (("--host", "ADDRESS", "HSMGATE_HOST"), ("--port", "PORT", "HSMGATE_PORT"),
                                      ("--data-dir", "DIR", "HSMGATE_DATA_DIR")):
        line = next(line for line in text.splitlines() if option in line)
        assert metavar in line and variable in line, line


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         tmp_path: object) -> None:
    def boom(host: str, port: int) -> None:
        raise RuntimeError("the first line\nsecond line with details")

    monkeypatch.setattr(serve_module, "check_port_free", boom)
    monkeypatch.setattr("sys.argv", ["hsmgate", "serve", "--dev", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        cli_module.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [("hsmgate: unexpected RuntimeError: the first line (run 'hsmgate --debug …' for the "
                      "traceback, and please report it)")], err


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    readme = f"{tmp_path}/README.md"
    open(readme, "w").close()
    plain = CliRunner().invoke(cli, ["serve", "--dev", "--data-dir", readme])
    debug = CliRunner().invoke(cli, ["--debug", "serve", "--dev", "--data-dir", readme])
    assert plain.exit_code == debug.exit_code == 2
    assert "Traceback" not in plain.output and "Traceback" in debug.output
    assert "is not a directory" in plain.output and "is not a directory" in debug.output
