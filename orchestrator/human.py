"""Sizes and ages as people read and type them: "169.7 MiB", "3 min", `--max-size 5G`.

Binary units throughout, as the engine's own options (`--memory 4g`) use them, so a size
typed in and a size printed mean the same number of bytes.
"""

from __future__ import annotations

import re

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
MULTIPLIERS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SIZE_PATTERN = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?")
AGE_STEPS = ((60, 1, "s"), (3600, 60, "min"), (48 * 3600, 3600, "h"))


def format_size(size: int) -> str:
    """Whole bytes below 1 KiB, one decimal above: enough to tell entries apart."""
    if size < 1024:
        return f"{size} B"
    value, unit = float(size), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {UNITS[unit]}"


def format_age(seconds: float) -> str:
    """Whole units, rounded down: "59 s", "59 min", then hours up to two
    days (an entry used yesterday reads "30 h", which says more than "1 d"), then days. A host
    clock behind the engine's gives negative ages: those read as 0 s."""
    seconds = max(0.0, seconds)
    for limit, unit_seconds, unit in AGE_STEPS:
        if seconds < limit:
            return f"{int(seconds // unit_seconds)} {unit}"
    return f"{int(seconds // 86400)} d"


def parse_size(text: str) -> int:
    """A size typed by a person: 5G, 500M, 1.5GiB, 2048 (bytes); k, m, g, t are binary.
    Raises ValueError with the accepted forms."""
    found = SIZE_PATTERN.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(f"{text!r} is not a size: give a number with an optional unit, like 5G, 500M or 1.5GiB")
    return int(float(found["number"]) * MULTIPLIERS[found["unit"]])


def count(number: int, noun: str, plural: str | None = None) -> str:
    """"1 result", "3 results", "0 entries": no "1 results" in what people read."""
    return f"{number} {noun}" if number == 1 else f"{number} {plural or noun + 's'}"


def aligned(rows: list[list[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as lines of columns two spaces apart, each as wide as its widest cell; the
    columns in `right` (numbers) are right-aligned so their units line up."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))] if rows else []
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines
