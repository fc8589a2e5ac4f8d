"""Shared builders for the unit tests: a small KIWI description template and line lookups.

Everything here is pure file I/O in tmp_path: no container engine, no network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from string import Template

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
CORPUS = REPO / "tests" / "descriptions"

DEFAULT_TYPE = """<type image="iso" primary="true" flags="dmsquash" firmware="efi" volid="UNIT_LIVE"
              kernelcmdline="quiet" squashfscompression="xz">
            <bootloader name="grub2" console="serial" timeout="5"/>
        </type>"""

DEFAULT_REPOSITORIES = """<repository type="apt-deb" alias="debian" distribution="bookworm" components="main">
        <source path="http://deb.debian.org/debian"/>
    </repository>"""

DEFAULT_PACKAGES = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="systemd-sysv"/>
        <package name="dracut"/>
        <package name="dracut-live"/>
    </packages>"""

TEMPLATE = Template("""<?xml version="1.0" encoding="utf-8"?>
${prolog}<image schemaversion="7.4" name="${name}" displayname="${displayname}">
    <description type="system">
        <author>liveorch unit tests</author>
        <contact>tests@example.invalid</contact>
        <specification>unit test description</specification>
    </description>
    <preferences>
        <version>${version}</version>
        <packagemanager>${packagemanager}</packagemanager>
        ${type}
    </preferences>
    <users>
        <user name="root" password="linux" pwdformat="plain" home="/root" groups="root"/>
    </users>
    ${repositories}
    ${packages}
${extra}</image>
""")

DEFAULTS = {
    "prolog": "",
    "name": "unit-live",
    "displayname": "Unit test live",
    "version": "1.2.3",
    "packagemanager": "apt",
    "type": DEFAULT_TYPE,
    "repositories": DEFAULT_REPOSITORIES,
    "packages": DEFAULT_PACKAGES,
    "extra": "",
}


def render_description(**substitutions: str) -> str:
    unknown = set(substitutions) - set(DEFAULTS)
    assert not unknown, f"unknown template keys {unknown}"
    return TEMPLATE.substitute({**DEFAULTS, **substitutions})


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first occurrence of needle in the file (the test fails if absent)."""
    text = path.read_text(encoding="utf-8")
    index = text.find(needle)
    assert index >= 0, f"{needle!r} not in {path}"
    return text.count("\n", 0, index) + 1


@pytest.fixture
def example_config() -> Path:
    return EXAMPLE


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture
def write_description(tmp_path: Path) -> Callable[..., Path]:
    """write_description(**substitutions) -> tmp_path/config.xml from the template;
    write_description(text=...) writes the given text as is."""

    def write(text: str | None = None, filename: str = "config.xml", **substitutions: str) -> Path:
        path = tmp_path / filename
        path.write_text(text if text is not None else render_description(**substitutions), encoding="utf-8")
        return path

    return write


@pytest.fixture
def line() -> Callable[[Path, str], int]:
    return line_of


@pytest.fixture
def refused_at_type_line() -> Callable[[Path], str]:
    """refused_at_type_line(path): parses path, expects a DescriptionError at path:<the
    <type> line> with exit code 2, returns its message."""
    def refused(path: Path) -> str:
        with pytest.raises(DescriptionError) as caught:
            parse_description(path)
        message = str(caught.value)
        assert message.startswith(f"{path}:{line_of(path, '<type ')}: "), message
        assert caught.value.exit_code == 2
        return message
    return refused


@pytest.fixture
def render() -> Callable[..., str]:
    return render_description
