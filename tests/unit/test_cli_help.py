"""`--help` reads as written for people: no Python types (`<bool>`, `<list[str]>`, `<path>`),
no `{config}`, and nothing cut at 80 columns when piped (rich ellipsizes a word that does not fit)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app

TYPE_NAMES = re.compile(r"<(bool|str|int|float|path|file|directory|list\[[^\]]*\]|[a-z]+\|[a-z|]+)>")


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group and verb, so a new one is checked without editing this test."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


ALL = _command_paths(typer.main.get_command(app))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_verb_is_checked() -> None:
    assert {("run",), ("lock",), ("images", "push"), ("cache", "prune"), ("init",), ("serve-pxe",)} <= set(ALL)


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "liveorch")
def test_help_has_no_type_names_and_nothing_is_cut(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert not TYPE_NAMES.search(text), TYPE_NAMES.search(text)
    assert "…" not in text, "a word was cut at 80 columns"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "<" not in usage, usage
    assert all(len(line) <= 80 for line in text.splitlines())


def test_flags_show_no_value_and_values_show_their_names() -> None:
    text = _help(("run",))
    assert re.search(r"--update-lock\s+Resolve", text)
    for option, metavar in [("--target-dir", "DIR"), ("--profile", "PROFILE"), ("--memory", "SIZE"),
                            ("--stage-timeout", "SECONDS"), ("--set-repo", "SPEC"), ("--add-repo", "SPEC"),
                            ("--source-date-epoch", "N"), ("--set-type-attr", "ATTR=VALUE")]:
        assert re.search(rf"{option}\s+(-\w\s+)?{re.escape(metavar)}\s", text), option
    assert "Usage: liveorch run [OPTIONS] [CONFIG]" in text
    assert "Usage: liveorch init [OPTIONS] DIR" in _help(("init",))
    assert "bookworm|trixie" in _help(("init",))


@pytest.mark.parametrize("verb", ["run", "validate"])
def test_the_repository_spec_is_shown_in_full(verb: str) -> None:
    text = _help((verb,))
    assert "source,type,alias,priority,imageinclude,package_gpgcheck," in text
    assert "{signing_keys},components,distribution,repo_gpgcheck" in text
    assert "http://deb.debian.org/debian,apt-deb,debian,,true,,,main,bookworm,true" in text


def test_the_commands_list_does_not_break_where_the_docstring_did() -> None:
    """The list flows each verb's first paragraph; the docstring's own line breaks left holes."""
    text = _help(())
    assert re.search(r"scratch volumes of interrupted builds", " ".join(text.replace("│", " ").split()))
