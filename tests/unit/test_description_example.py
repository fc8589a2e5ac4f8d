"""parse_description on the bundled example (examples/bookworm-live/config.xml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.description import Description, Repository, User, find_description, parse_description
from liveorch.orchestrator.errors import DescriptionError


@pytest.fixture
def example(example_config: Path) -> Description:
    return parse_description(example_config)


def test_identity(example: Description, example_config: Path) -> None:
    assert example.path == example_config
    assert example.directory == example_config.parent
    assert example.name == "bookworm-live"
    assert example.displayname == "Debian bookworm live (liveorch)"
    assert example.version == "1.0.0"
    assert example.summary == "Minimal Debian 12 live ISO"
    assert example.packagemanager == "apt"
    assert (example.locale, example.keytable, example.timezone) == ("en_US", "us", "UTC")
    assert example.profiles == ()


def test_iso_type(example: Description) -> None:
    live = example.live
    assert live.flags == "dmsquash"
    assert live.firmware == "uefi"
    assert live.volid == "BOOKWORM_LIVE"
    assert live.kernelcmdline == "console=tty0 console=ttyS0,115200"
    assert live.squashfscompression == "zstd"
    assert live.publisher == "liveorch"
    assert live.application_id == "bookworm-live"
    assert live.efifatimagesize is None
    assert live.mediacheck is True
    assert live.hybridpersistent is False


def test_bootloader(example: Description) -> None:
    assert example.live.bootloader_console == "serial"
    assert example.live.bootloader_timeout == 3
    assert example.live.bootloader_timeout_style == "menu"


def test_repositories(example: Description) -> None:
    assert example.repositories == [
        Repository(source="http://deb.debian.org/debian", alias="debian", distribution="bookworm",
                   components=("main",), trusted=False),
        Repository(source="http://deb.debian.org/debian", alias="debian-updates", distribution="bookworm-updates",
                   components=("main",), trusted=False),
        Repository(source="http://deb.debian.org/debian-security", alias="debian-security",
                   distribution="bookworm-security", components=("main",), trusted=False),
    ]


def test_packages_image_and_bootstrap_in_document_order(example: Description) -> None:
    assert example.packages == [
        "linux-image-amd64", "systemd-sysv", "login", "passwd", "dracut", "dracut-live", "isomd5sum", "shim-signed",
        "grub-efi-amd64-signed", "dracut-network", "procps",
        "curl", "ca-certificates",
    ]
    assert example.delete_packages == []


def test_users(example: Description) -> None:
    assert example.users == [
        User(name="root", password="linux", pwdformat="plain", home="/root", groups=("root",)),
    ]


def test_directory_finds_config_xml(example_config: Path) -> None:
    description = parse_description(example_config.parent)
    assert description.path == example_config
    assert description.name == "bookworm-live"


def test_directory_finds_appliance_kiwi(tmp_path: Path, example_config: Path) -> None:
    (tmp_path / "appliance.kiwi").write_bytes(example_config.read_bytes())
    assert find_description(tmp_path) == tmp_path / "appliance.kiwi"
    assert parse_description(tmp_path).name == "bookworm-live"


def test_directory_without_description(tmp_path: Path) -> None:
    with pytest.raises(DescriptionError) as caught:
        parse_description(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "config.xml" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    with pytest.raises(DescriptionError) as caught:
        parse_description(missing)
    assert str(caught.value).startswith(f"{missing}: ")
    assert caught.value.exit_code == 2
