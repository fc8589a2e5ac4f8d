"""examples/kiwi-features builds with the command its header gives (a <?liveorch ...?> line: an XML
comment cannot hold an option's '--'), that command validates, and the README shows it whole.
tests/conftest.py builds the example in CI with the --set-repo read from the same line."""

from __future__ import annotations

import shlex
from pathlib import Path

from lxml import etree
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]
FEATURES = REPO / "examples" / "kiwi-features" / "config.xml"


def header_command(config: Path) -> list[str]:
    """The arguments of the one <?liveorch ...?> line before the <image> element."""
    root = etree.parse(str(config)).getroot()
    lines = [node.text for node in root.itersiblings(preceding=True)
             if isinstance(node, etree._ProcessingInstruction) and node.target == "liveorch"]
    assert len(lines) == 1, lines
    return shlex.split(lines[0] or "")


def test_the_header_command_is_a_build_with_the_repository_it_needs() -> None:
    command = header_command(FEATURES)
    assert command[:2] == ["run", "examples/kiwi-features"]
    assert command[command.index("-p") + 1] == "Live"
    assert command[command.index("--set-repo") + 1].startswith("http://deb.debian.org/debian,apt-deb,debian,")


def test_the_header_command_validates(monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # the header's path is from the repository's top directory
    arguments = ["validate", *header_command(FEATURES)[1:]]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "examples/kiwi-features/config.xml: ok: kiwi-features.x86_64-2.1.0.iso" in result.stdout
    without_repository = [a for a in arguments if not a.startswith(("--set-repo", "http://"))]
    refused = CliRunner().invoke(app, without_repository)
    assert refused.exit_code == 2 and "obs://Debian:12/standard" in refused.stderr


def test_the_readme_shows_the_whole_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "liveorch " + shlex.join(header_command(FEATURES)) in readme
