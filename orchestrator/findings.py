"""What `validate` reports about a description: one line per problem, where it is and the fix.

A Finding is a str ("config.xml:12: message (fix: ...)") so that it travels in the
description's warnings and the plan's notes, which `run` prints and the report records as
plain text, while `validate` reads its parts to print `config.xml:12: note: ... (fix: ...)`.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable


class Severity(enum.StrEnum):
    """ERROR: the build or the boot will certainly fail, so validate refuses it.
    NOTE: probably a mistake, but an image can still be built; `--strict` refuses it too."""

    ERROR = "error"
    NOTE = "note"


class Finding(str):
    where: str
    message: str
    fix: str | None
    severity: Severity

    def __new__(cls, where: str, message: str, fix: str | None = None,
                severity: Severity = Severity.NOTE) -> Finding:
        text = f"{where}: {message}" + (f" (fix: {fix})" if fix else "")
        finding = super().__new__(cls, text)
        finding.where, finding.message, finding.fix, finding.severity = where, message, fix, severity
        return finding

    def line(self, strict: bool = False) -> str:
        """The line validate prints; with strict a note is printed (and counted) as an error."""
        severity = Severity.ERROR if strict else self.severity
        return f"{self.where}: {severity}: {self.message}" + (f" (fix: {self.fix})" if self.fix else "")


def did_you_mean(name: str, known: Iterable[str], template: str = "{}") -> str | None:
    """'did you mean timeout=?' for the closest known name, or None when nothing is close:
    unknown KIWI markup is usually markup liveorch has no use for, not a typo."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f"did you mean {template.format(close[0])}?" if close else None
