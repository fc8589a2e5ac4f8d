"""docs/cli.md is generated from the CLI: it must match what the code says today."""

from __future__ import annotations

from liveorch.orchestrator.cli_reference import DOC, render


def test_cli_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "run: python -m orchestrator.cli_reference"


def test_every_verb_is_documented_with_an_example() -> None:
    text = render()
    for verb in ("init", "run", "validate", "lock", "verify-repro", "test", "boot", "clean", "cache ls", "cache prune",
                 "images build", "images ls"):
        assert f"## `liveorch {verb}`" in text
    assert text.count("Example") >= 6
