"""What `validate` (and `run --strict`) say about a description that parses and plans.

A description that cannot be read at all stops at the first DescriptionError. One that can
gets every Finding at once, one line each (`config.xml:12: note: ... (fix: ...)`): the pieces
the image lacks (image_checks) and markup that is unknown or ignored. Errors fail always;
notes fail with --strict, which is for CI, where a note nobody reads is a note lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.findings import Finding, Severity
from liveorch.orchestrator.image_checks import check_image
from liveorch.orchestrator.plan import BuildPlan


@dataclass(frozen=True)
class Validation:
    findings: list[Finding]
    strict: bool

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if self.strict or f.severity is Severity.ERROR]

    @property
    def passing(self) -> list[Finding]:
        return [f for f in self.findings if not self.strict and f.severity is not Severity.ERROR]


def validate_description(description: Description, strict: bool = False) -> Validation:
    markup = [w for w in description.warnings if isinstance(w, Finding)]
    return Validation([*check_image(description), *markup], strict)


def plan_notes(description: Description, plan: BuildPlan) -> list[str]:
    """The plan's own notes (what liveorch does for the description: packages it adds, the live
    module it boots with); the description's findings, which the plan repeats, are printed as findings."""
    own = set(description.warnings)
    return [note for note in plan.notes if note not in own]


def refuse_for_strict(description: Description) -> None:
    """`run --strict`: stop before anything runs when validate --strict would fail, naming
    the first problem (validate lists them all)."""
    failures = validate_description(description, strict=True).failures
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more: liveorch validate --strict lists them)" if len(failures) > 1 else ""
        raise DescriptionError(f"{first.message}{more}", first.where, None,
                               hint=f"fix: {first.fix}" if first.fix else None)
