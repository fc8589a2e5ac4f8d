"""How a build reports itself while it runs: a live per-stage view on a terminal, plain
timestamped lines in CI or pipes, or one JSON object per line for other tools.

The build calls the same four methods whatever the renderer; nothing else in liveorch
prints during a build.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from liveorch.orchestrator.stage_noise import is_noise
from liveorch.orchestrator.stage_specs import stage_names

STATE_STYLE = {"pending": "dim", "running": "bold cyan", "pulling": "cyan", "cached": "green",
               "done": "bold green", "failed": "bold red"}


class Progress(Protocol):
    def note(self, message: str) -> None: ...

    def stage(self, stage: str, state: str, seconds: float | None = None) -> None: ...

    def line(self, stage: str, text: str) -> None: ...

    def advance(self, stage: str, percent: float, detail: str) -> None: ...

    def close(self) -> None: ...


def _stamp() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


class PlainProgress:
    """One line per event with a timestamp and no control characters (CI logs, pipes)."""

    def __init__(self, verbose: bool = False, write: Callable[[str], None] | None = None,
                 timestamps: bool = True) -> None:
        self.verbose = verbose
        self.timestamps = timestamps
        self.write = write or (lambda text: print(text, flush=True))
        self.tenths: dict[str, int] = {}

    def _emit(self, text: str) -> None:
        self.write(f"{_stamp()} {text}" if self.timestamps else text)

    def note(self, message: str) -> None:
        self._emit(message)

    def stage(self, stage: str, state: str, seconds: float | None = None) -> None:
        suffix = f" in {seconds:.1f} s" if seconds is not None and state in ("done", "failed") else ""
        self._emit(f"[{stage}] {state}{suffix}")

    def line(self, stage: str, text: str) -> None:
        if self.verbose:
            self._emit(f"[{stage}] {text}")

    def advance(self, stage: str, percent: float, detail: str) -> None:
        """A line at each tenth, so a CI log shows a long stage moving without flooding."""
        tenth = int(percent // 10)
        if tenth > self.tenths.get(stage, 0) or self.verbose:
            self.tenths[stage] = tenth
            self._emit(f"[{stage}] {percent:.0f}% {detail}")

    def close(self) -> None:
        pass


class JsonProgress:
    """JSON Lines: one object per line, each with an event name and a UTC time."""

    def __init__(self, stream: IO[str] | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self._emit("note", message=message)

    def stage(self, stage: str, state: str, seconds: float | None = None) -> None:
        self._emit("stage", stage=stage, state=state, seconds=seconds)

    def line(self, stage: str, text: str) -> None:
        if self.verbose:
            self._emit("log", stage=stage, line=text)

    def advance(self, stage: str, percent: float, detail: str) -> None:
        self._emit("progress", stage=stage, percent=round(percent, 1), detail=detail)

    def close(self) -> None:
        pass


class LiveProgress:
    """A table of the stages, redrawn in place: state, elapsed time, current step."""

    def __init__(self, verbose: bool = False) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=False)
        self.verbose = verbose
        self.states = dict.fromkeys(stage_names(), "pending")
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.current: dict[str, str] = {}
        self.spinners: dict[str, Any] = {}
        self.measured: set[str] = set()  # stages that have reported progress
        # transient: the table goes when the build ends, and the summary shows the stages once.
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._render)
        self.live.start()

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(width=2)
        table.add_column(min_width=9)
        table.add_column(min_width=8)
        table.add_column(justify="right", min_width=7)
        table.add_column(overflow="ellipsis", no_wrap=True, max_width=70)
        for stage in stage_names():
            state = self.states[stage]
            # One Spinner per stage, kept across renders: a new one each time never turns.
            running = state in ("running", "pulling")
            icon: Any = self.spinners.setdefault(stage, Spinner("dots")) if running else Text(
                {"pending": "·", "cached": "↺", "done": "✓", "failed": "✗"}[state])
            elapsed = time.monotonic() - self.started[stage] if running else self.seconds.get(stage, 0.0)
            shown = f"{elapsed:.1f}s" if state in ("running", "pulling", "done", "failed") else ""
            step = self.current.get(stage, "") if state == "running" else ""
            table.add_row(icon, Text(stage, style="bold"), Text(state, style=STATE_STYLE[state]), shown,
                          Text(step, style="dim"))
        return table

    def note(self, message: str) -> None:
        self.live.console.print(message, highlight=False, markup=False)

    def stage(self, stage: str, state: str, seconds: float | None = None) -> None:
        self.states[stage] = state
        if state in ("running", "pulling"):
            self.started[stage] = time.monotonic()
        if seconds is not None:
            self.seconds[stage] = seconds
        self.live.refresh()

    def line(self, stage: str, text: str) -> None:
        """The stage's latest line is its step, unless it is known noise or the stage reports
        progress of its own (the percent is the better step); --verbose shows every line."""
        if text.strip() and not is_noise(text) and stage not in self.measured:
            self.current[stage] = text.strip()[:120]
        if self.verbose:
            self.live.console.print(f"[{stage}] {text}", highlight=False, markup=False)

    def advance(self, stage: str, percent: float, detail: str) -> None:
        self.measured.add(stage)
        self.current[stage] = f"{percent:3.0f}% {detail}"[:120]

    def close(self) -> None:
        self.live.stop()


def make_progress(kind: str, verbose: bool) -> Progress:
    """`auto` is the live view on a terminal (unless CI is set), plain lines otherwise."""
    import os

    if kind == "json":
        return JsonProgress(verbose=verbose)
    if kind == "live" or (kind == "auto" and sys.stdout.isatty() and not os.environ.get("CI")):
        return LiveProgress(verbose=verbose)
    return PlainProgress(verbose=verbose)


def as_progress(target: Progress | Callable[[str], None]) -> Progress:
    """Library callers may pass a plain print-like function."""
    if hasattr(target, "stage"):
        return target  # type: ignore[return-value]
    return PlainProgress(write=target, timestamps=False)  # type: ignore[arg-type]
