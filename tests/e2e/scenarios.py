"""Boot scenarios run two at a time (one emulated CPU each on a 2-core machine)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from liveorch.orchestrator.boot import BootResult

Boots = list[BootResult]
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def output_lines(boot: BootResult) -> list[str]:
    """The command's output lines, without the terminal's escape sequences (which the
    serial transcript can carry split across reads)."""
    return [ESCAPES.sub("", line).strip() for line in boot.command_output.replace("\r", "").splitlines()]


def outcome(job: Callable[[], Boots]) -> Boots | Exception:
    """A scenario's boots, or the exception it raised (the test of that scenario reports it)."""
    try:
        return job()
    except Exception as error:
        return error


def report_logins(results: dict[str, Boots | Exception]) -> None:
    for name, result in results.items():
        if not isinstance(result, Exception):
            print(f"{name}: " + ", ".join(f"login after {b.seconds_to_login:.0f} s" for b in result))


def run_two_at_a_time(jobs: dict[str, Callable[[], Boots]]) -> dict[str, Boots | Exception]:
    """Every scenario's boots, or the exception it raised."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(jobs, pool.map(outcome, jobs.values()), strict=True))
    report_logins(results)
    return results
