"""The CLI reference (docs/cli.md), generated from the Typer app itself so it cannot drift:
a test regenerates it and compares. Regenerate with `python -m liveorch.orchestrator.cli_reference`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer.main

from liveorch.orchestrator.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _options(command: Any) -> list[str]:
    """Typer ships its own click; duck typing keeps this independent of which one."""
    rows = []
    for param in command.params:
        if param.param_type_name == "argument":
            rows.append(f"| `{param.metavar or param.name.upper()}` | argument | {getattr(param, 'help', '') or ''} |")
            continue
        if param.param_type_name != "option" or param.hidden:
            continue
        value = f" {param.metavar}" if param.metavar and not param.is_flag else ""
        names = ", ".join(f"`{o}{value if i == 0 else ''}`" for i, o in enumerate(param.opts + param.secondary_opts))
        default = param.default if param.default not in (None, False, [], ()) and not callable(param.default) else ""
        help_text = (param.help or "").replace("|", "\\\\|")
        rows.append(f"| {names} | {default!s} | {help_text} |".replace("| |", "|  |"))
    return rows


def _walk(command: Any, path: list[str]) -> list[str]:
    lines: list[str] = []
    if hasattr(command, "commands"):
        for name in sorted(command.commands):
            lines += _walk(command.commands[name], [*path, name])
        return lines
    lines.append(f"## `{' '.join(path)}`\n")
    lines.append(inspect.cleandoc(command.help or "") + "\n")
    rows = _options(command)
    if rows:
        lines += ["| option | default | meaning |", "| --- | --- | --- |", *rows, ""]
    if command.epilog:
        lines += ["```text", inspect.cleandoc(command.epilog), "```", ""]
    return lines


def render() -> str:
    root = typer.main.get_command(app)
    header = ["# liveorch command line\n", "Generated from the CLI by `python -m liveorch.orchestrator.cli_reference`; "
              "tests/unit/test_cli_reference.py keeps it in sync.\n"]
    global_rows = _options(root)
    if global_rows:
        header += ["Global options (before the verb):\n", "| option | default | meaning |", "| --- | --- | --- |",
                   *global_rows, ""]
    return "\n".join(header + _walk(root, ["liveorch"])) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
