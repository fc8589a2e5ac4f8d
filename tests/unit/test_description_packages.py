"""<package arch=...> filtering and <packages type="delete"/"uninstall">."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description


@pytest.fixture
def arch_config(corpus: Path) -> Path:
    return corpus / "arch" / "config.xml"


def test_amd64_keeps_x86_64_and_amd64_drops_aarch64(arch_config: Path) -> None:
    description = parse_description(arch_config)
    assert description.packages == [
        "linux-image-amd64", "grub-efi-amd64-bin", "systemd-sysv", "dracut", "dracut-live", "ca-certificates",
    ]
    assert "linux-image-arm64" not in description.packages


def test_delete_and_uninstall_go_to_delete_packages(arch_config: Path) -> None:
    description = parse_description(arch_config)
    assert description.delete_packages == ["nano", "vim-tiny"]
    assert not set(description.delete_packages) & set(description.packages)


def test_arm64_build_keeps_aarch64_packages(arch_config: Path) -> None:
    description = parse_description(arch_config, arch="arm64")
    assert description.packages == ["linux-image-arm64", "systemd-sysv", "dracut", "dracut-live", "ca-certificates"]
    assert description.delete_packages == ["nano", "arm-only-tool"]


def test_duplicates_are_listed_once(write_description) -> None:
    path = write_description(packages="""<packages type="image">
        <package name="dracut"/>
        <package name="dracut"/>
    </packages>
    <packages type="bootstrap">
        <package name="dracut"/>
        <package name="ca-certificates"/>
    </packages>""")
    assert parse_description(path).packages == ["dracut", "ca-certificates"]


def test_comma_separated_arch_list(write_description) -> None:
    path = write_description(packages="""<packages type="image">
        <package name="shim-signed" arch="x86_64,aarch64"/>
    </packages>""")
    assert parse_description(path).packages == ["shim-signed"]


def test_packages_for_the_iso_build_type(write_description) -> None:
    path = write_description(packages="""<packages type="image">
        <package name="linux-image-amd64"/>
    </packages>
    <packages type="iso">
        <package name="live-tools"/>
    </packages>""")
    assert "live-tools" in parse_description(path).packages
