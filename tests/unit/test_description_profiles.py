"""Profile selection: profiles=, import="true" defaults, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError


@pytest.fixture
def profiled(corpus: Path) -> Path:
    return corpus / "profiles" / "config.xml"


@pytest.fixture
def imported(corpus: Path) -> Path:
    return corpus / "profile-import" / "config.xml"


def test_live_profile_selects_its_type_packages_and_users(profiled: Path) -> None:
    description = parse_description(profiled, profiles=("Live",))
    assert description.profiles == ("Live",)
    assert description.version == "2.1.0"
    assert description.locale == "en_US"
    assert description.live.volid == "PROFILED_LIVE"
    assert description.live.flags == "dmsquash"
    assert description.live.firmware == "efi"
    assert description.live.bootloader_timeout == 4
    assert description.packages == ["linux-image-amd64", "dracut", "dracut-live", "live-extra", "shared-extra"]
    assert [u.name for u in description.users] == ["root", "live"]
    live_user = description.users[1]
    assert live_user.groups == ("audio", "video")
    assert live_user.shell == "/bin/bash"
    assert live_user.pwdformat == "plain"
    assert description.repositories[0].components == ("main", "contrib")


def test_other_profile_selects_the_other_type(profiled: Path) -> None:
    description = parse_description(profiled, profiles=("Other",))
    assert description.profiles == ("Other",)
    assert description.live.volid == "PROFILED_OTHER"
    assert description.live.flags == "overlay"
    assert description.live.firmware == "bios"
    assert description.live.bootloader_timeout == 10  # no <bootloader>: the default
    assert description.locale == "de_DE"  # the later <preferences> wins
    assert description.packages == ["linux-image-amd64", "dracut", "dracut-live", "other-extra", "shared-extra"]
    assert [u.name for u in description.users] == ["root", "other"]
    assert description.users[1].pwdformat == "encrypted"


def test_two_profiles_take_the_primary_type_and_both_package_sets(profiled: Path) -> None:
    description = parse_description(profiled, profiles=("Other", "Live"))
    assert description.profiles == ("Live", "Other")
    assert description.live.volid == "PROFILED_LIVE"  # primary="true"
    assert description.packages == [
        "linux-image-amd64", "dracut", "dracut-live", "live-extra", "other-extra", "shared-extra",
    ]
    assert [u.name for u in description.users] == ["root", "live", "other"]


def test_unknown_profile_is_named(profiled: Path) -> None:
    with pytest.raises(DescriptionError) as caught:
        parse_description(profiled, profiles=("Nope",))
    message = str(caught.value)
    assert str(profiled) in message
    assert "'Nope'" in message
    assert "Live" in message and "Other" in message  # the known ones are listed


def test_unknown_profile_in_a_description_without_profiles(example_config: Path) -> None:
    with pytest.raises(DescriptionError, match=r"unknown profile 'Live' \(known: none\)"):
        parse_description(example_config, profiles=("Live",))


def test_iso_type_only_inside_a_profile_needs_profile(profiled: Path, line) -> None:
    with pytest.raises(DescriptionError) as caught:
        parse_description(profiled)
    message = str(caught.value)
    assert f"{profiled}:{line(profiled, '<image ')}: " in message
    assert "--profile" in message
    assert 'type image="iso"' in message


def test_import_true_profile_applies_by_default(imported: Path) -> None:
    description = parse_description(imported)
    assert description.profiles == ("Live",)
    assert description.live.volid == "IMPORTED_LIVE"
    assert description.packages == ["linux-image-amd64", "live-extra"]


def test_explicit_profile_replaces_the_imported_default(imported: Path) -> None:
    description = parse_description(imported, profiles=("Other",))
    assert description.profiles == ("Other",)
    assert description.live.volid == "IMPORTED_OTHER"
    assert description.packages == ["linux-image-amd64", "other-extra"]


def test_no_repository_for_the_selected_profile(write_description, line) -> None:
    path = write_description(
        repositories="""<repository type="apt-deb" profiles="Other" distribution="bookworm">
        <source path="http://deb.debian.org/debian"/>
    </repository>""",
        extra="""    <profiles>
        <profile name="Live" description="live"/>
        <profile name="Other" description="other"/>
    </profiles>
""",
    )
    with pytest.raises(DescriptionError) as caught:
        parse_description(path, profiles=("Live",))
    assert f"{path}:{line(path, '<image ')}: no <repository>" in str(caught.value)
    assert parse_description(path, profiles=("Other",)).repositories[0].distribution == "bookworm"
