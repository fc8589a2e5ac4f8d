"""Help that reads as written for people, not generated from Python types.

Typer shows each parameter's Python type in `--help` (`--update-lock <bool>`, `--profile
<list[str]>`, `config <path>`) and a required argument as `{config}`. Here a flag shows no
value at all, an option shows the metavar its declaration names (`--target-dir DIR`, `--memory
SIZE`; its name in capitals when it names none), and an argument shows only its name in
capitals, bracketed in the usage line when it may be left out (`run [CONFIG]`, `init DIR`).

Use `HumanTyper` instead of `typer.Typer`: its commands and sub-groups get these classes.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class HumanArgument(TyperArgument):
    """An argument shown by its name alone: the help says what it is, a type adds nothing."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        """Click's convention (`CONFIG`, `[CONFIG]`) rather than Typer's `{config}`."""
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else f"{name}..."


def humanize(param: Any) -> None:
    """Give one parameter its human form; idempotent, since click asks for the parameters often."""
    if isinstance(param, TyperArgument):
        param.metavar = param.metavar or param.name.upper()
        param.__class__ = HumanArgument  # adds behaviour, no state: Typer offers no class for arguments
    elif isinstance(param, TyperOption):
        if param.is_flag or param.count:
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = param.name.upper()


def _one_line(text: str) -> str:
    """A command's first paragraph as one line: the commands list otherwise breaks where the docstring did."""
    return " ".join(text.strip().split("\n\n")[0].split())


class _Human:
    """What a command and a group share: a one-line short help, and parameters in their
    human form (their --help too)."""

    help: str | None
    short_help: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.short_help is None and self.help:
            self.short_help = _one_line(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            humanize(param)
        return params


class HumanCommand(_Human, TyperCommand):
    """A command whose parameters (its --help too) have their human form."""


class HumanGroup(_Human, TyperGroup):
    """A group (the root, `images`, `cache`) whose own options have their human form."""


class HumanTyper(typer.Typer):
    """typer.Typer whose groups and commands show human help (see the module's docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=HumanGroup, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", HumanCommand)
        return super().command(name, **kwargs)
