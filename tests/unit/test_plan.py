"""make_plan: KIWI naming, live boot packages, default volid, stage options."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from liveorch.orchestrator.description import Description, parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.passwords import CRYPT_ROUNDS, sha512_crypt
from liveorch.orchestrator.plan import (
    LIVE_BOOT_PACKAGES,
    BuildPlan,
    default_volid,
    iso_name,
    make_plan,
    secure_boot_packages,
)
from liveorch.orchestrator.stage_specs import spec_of, stage_specs
from liveorch.stages.contract import canonical_json, decode, encode
from liveorch.stages.contracts.checksum import ChecksumOptions
from liveorch.stages.contracts.initrd import InitrdOptions
from liveorch.stages.contracts.iso import ISO_IMAGE, Firmware, Terminal, TimeoutStyle
from liveorch.stages.contracts.resolve import Lock, LockedPackage, LockedRepository
from liveorch.stages.contracts.rootfs import User
from liveorch.stages.contracts.squashfs import Compression, RootFilesystem, SquashfsOptions

SHA512_CRYPT = re.compile(rf"\$6\$rounds={CRYPT_ROUNDS}\$([./0-9A-Za-z]{{16}})\$[./0-9A-Za-z]{{86}}")
TEMPLATE_USER = '<user name="root" password="linux" pwdformat="plain" home="/root" groups="root"/>'
PACKAGES_WITHOUT_DRACUT = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="systemd-sysv"/>
    </packages>"""


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"


# Module-wide: every plan hashes the root password (656000 rounds); no test changes them.
@pytest.fixture(scope="module")
def example() -> Description:
    return parse_description(EXAMPLE)


@pytest.fixture(scope="module")
def example_plan(example: Description) -> BuildPlan:
    return make_plan(example)


def test_kiwi_iso_name(example: Description, example_plan: BuildPlan) -> None:
    assert example_plan.image_name == "bookworm-live"
    assert example_plan.iso_name == iso_name(example) == "bookworm-live.x86_64-1.0.0.iso"
    assert example_plan.basename == "bookworm-live.x86_64-1.0.0"
    assert example_plan.options["checksum"] == ChecksumOptions(iso_name=example_plan.iso_name, mediacheck=True)


def test_iso_stage_writes_image_iso_exported_under_the_kiwi_name(example_plan: BuildPlan) -> None:
    """The iso stage's file has one name in every build; the KIWI name is given at export."""
    names = dict(image=example_plan.image_name, basename=example_plan.basename, iso=example_plan.iso_name)
    assert ISO_IMAGE == "image.iso"
    # bootx64.efi (--pxe) goes into the network-boot bundle only, not beside the ISO
    assert [(o.name, o.export) for o in spec_of("iso").outputs] == [(ISO_IMAGE, "{iso}"), ("bootx64.efi", None)]
    assert spec_of("iso").output(ISO_IMAGE).export.format(**names) == "bookworm-live.x86_64-1.0.0.iso"
    checksum = spec_of("checksum")
    assert checksum.output(ISO_IMAGE).export.format(**names) == example_plan.iso_name
    assert checksum.output(f"{ISO_IMAGE}.sha256").export.format(**names) == f"{example_plan.iso_name}.sha256"


def test_iso_name_uses_name_and_version(write_description) -> None:
    plan = make_plan(parse_description(write_description(name="My_Live", version="4.5.6")))
    assert plan.iso_name == "My_Live.x86_64-4.5.6.iso"


def test_missing_version_defaults_to_1_0_0(write_description) -> None:
    path = write_description(version="")
    assert make_plan(parse_description(path)).iso_name == "unit-live.x86_64-1.0.0.iso"


def test_options_for_every_stage(example_plan: BuildPlan) -> None:
    assert set(example_plan.options) == set(stage_specs())
    for stage, spec in stage_specs().items():
        assert type(example_plan.options[stage]) is spec.options, stage


def _lock() -> Lock:
    return Lock(format=1, architecture="amd64", source_date_epoch=1700000000,
                repositories=(LockedRepository("debian", "http://deb.debian.org/debian", "bookworm", ("main",),
                                               trusted=False, local=False),),
                requested=("dracut",),
                packages=(LockedPackage("dracut", "059-4", "amd64", "0" * 64, 1234, "pool/d/dracut.deb",
                                        "debian"),))


KIWI_FEATURES_REPO = "http://deb.debian.org/debian,apt-deb,debian,,true,,,main,bookworm,true"


@pytest.mark.parametrize(("name", "profiles", "pxe_url"), [
    ("bookworm-live", (), None),
    ("kiwi-features", ("Live",), "http://10.0.2.2:8000/"),  # archives, imageinclude, id, realname, crypt hash
])
def test_every_stages_options_decode_back_from_json(name: str, profiles: tuple[str, ...],
                                                    pxe_url: str | None) -> None:
    """What the stage container reads (request.json) is exactly what the plan made."""
    overrides = Overrides(set_repo=KIWI_FEATURES_REPO) if profiles else None
    description = parse_description(EXAMPLE.parents[1] / name, profiles=profiles, overrides=overrides)
    plan = make_plan(description, lock=_lock(), payload_sha256="ab" * 32, pxe_url=pxe_url)
    for stage, spec in stage_specs().items():
        options = plan.options[stage]
        data = json.loads(canonical_json(encode(options)))
        assert decode(spec.options, data, stage) == options, stage
    assert plan.options["resolve"].lock == _lock()
    assert plan.options["rootfs"].payload_sha256 == "ab" * 32


def test_example_gets_only_locales_added(example_plan: BuildPlan, example_config: Path, line) -> None:
    """Its <locale>en_US</locale> needs locale data; everything else it lists."""
    assert example_plan.notes == [f"<locale>en_US</locale> ({example_config}:{line(example_config, '<locale>')}): "
                                  "added locales, whose definitions the rootfs stage compiles with localedef"]
    packages = example_plan.options["resolve"].packages
    assert packages[-1] == "locales" and packages.count("locales") == 1
    assert packages.count("dracut") == 1
    assert packages.count("dracut-live") == 1


def test_dracut_and_dracut_live_added_with_notes(write_description) -> None:
    plan = make_plan(parse_description(write_description(packages=PACKAGES_WITHOUT_DRACUT)))
    assert plan.options["resolve"].packages == ("linux-image-amd64", "systemd-sysv", "dracut", "dracut-live")
    for package in LIVE_BOOT_PACKAGES:
        assert any(note.startswith(f"added {package}:") for note in plan.notes), plan.notes
    assert len(plan.notes) == 2


def test_only_the_missing_live_package_is_added(write_description) -> None:
    packages = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut"/>
    </packages>"""
    plan = make_plan(parse_description(write_description(packages=packages)))
    assert plan.options["resolve"].packages == ("linux-image-amd64", "dracut", "dracut-live")
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("added dracut-live:")


def test_dracut_kiwi_live_dropped_with_note(write_description) -> None:
    packages = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut-kiwi-live"/>
        <package name="dracut"/>
        <package name="dracut-live"/>
    </packages>"""
    description = parse_description(write_description(packages=packages))
    assert "dracut-kiwi-live" in description.packages
    plan = make_plan(description)
    assert "dracut-kiwi-live" not in plan.options["resolve"].packages
    assert plan.options["resolve"].packages == ("linux-image-amd64", "dracut", "dracut-live")
    assert len(plan.notes) == 1
    assert "dracut-kiwi-live" in plan.notes[0]
    assert description.packages == ["linux-image-amd64", "dracut-kiwi-live", "dracut", "dracut-live"]  # untouched


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bookworm-live", "BOOKWORM_LIVE"),
        ("my.image+v2", "MY_IMAGE_V2"),
        ("Live_1", "LIVE_1"),
        ("a" * 40, "A" * 32),
    ],
)
def test_default_volid(name: str, expected: str) -> None:
    volid = default_volid(name)
    assert volid == expected
    assert re.fullmatch(r"[A-Z0-9_]{1,32}", volid)


def test_default_volid_used_when_type_has_none(write_description) -> None:
    name = "a-very-long-image-name.with.dots-and+plus"
    plan = make_plan(parse_description(write_description(name=name, type='<type image="iso"/>')))
    volid = plan.options["iso"].volid
    assert volid == "A_VERY_LONG_IMAGE_NAME_WITH_DOTS"
    assert re.fullmatch(r"[A-Z0-9_]{1,32}", volid)


def test_type_volid_wins_over_default(example_plan: BuildPlan) -> None:
    assert example_plan.options["iso"].volid == "BOOKWORM_LIVE"


def test_iso_stage_options(example_plan: BuildPlan) -> None:
    iso = example_plan.options["iso"]
    assert iso.volid == "BOOKWORM_LIVE"
    assert iso.title == "Debian bookworm live (liveorch)"
    assert iso.publisher == "liveorch"
    assert iso.application_id == "bookworm-live"
    assert iso.firmware is Firmware.UEFI
    assert iso.efifatimagesize is None
    # the bootloader settings and kernelcmdline arrive as the finished menu
    assert (iso.menu.terminal, iso.menu.timeout, iso.menu.timeout_style) == (Terminal.SERIAL, 3, TimeoutStyle.MENU)
    assert iso.menu.entries[0].title == iso.title
    assert iso.menu.entries[0].kernel_cmdline == ("root=live:CDLABEL=BOOKWORM_LIVE rd.live.image "
                                                  "rd.live.overlay.overlayfs=1 console=tty0 console=ttyS0,115200")


def test_iso_identity_defaults(write_description) -> None:
    """Without publisher and application_id: liveorch and the volume label, as KIWI does."""
    iso = make_plan(parse_description(write_description())).options["iso"]
    assert (iso.volid, iso.application_id, iso.publisher) == ("UNIT_LIVE", "UNIT_LIVE", "liveorch")


def test_title_falls_back_to_the_image_name(write_description) -> None:
    iso = make_plan(parse_description(write_description(displayname=""))).options["iso"]
    assert iso.title == "unit-live"
    assert iso.menu.entries[0].title == "unit-live"
    assert iso.menu.entries[-1].title == "unit-live (failsafe)"


def test_other_stage_options(example_plan: BuildPlan) -> None:
    assert example_plan.options["squashfs"] == SquashfsOptions(filesystem=RootFilesystem.SQUASHFS,
                                                               compression=Compression.ZSTD, erofs=None)
    assert example_plan.options["initrd"] == InitrdOptions(dracut_modules=("dmsquash-live",), drivers=(),
                                                           secure_boot=True)
    rootfs = example_plan.options["rootfs"]
    assert rootfs.suite == "bookworm"
    assert rootfs.hostname == "bookworm-live"
    assert (rootfs.locale, rootfs.keytable, rootfs.timezone) == ("en_US", "us", "UTC")
    assert rootfs.serial_console == "ttyS0"
    assert rootfs.payload_sha256 is None
    assert rootfs.profile["kiwi_iso_volid"] == "BOOKWORM_LIVE"
    assert rootfs.profile["kiwi_firmware"] == "uefi"
    assert rootfs.profile["kiwi_live_flags"] == "dmsquash"
    (root,) = rootfs.users
    assert dataclasses.replace(root, password_hash="") == User(name="root", password_hash="", home="/root",
                                                               shell=None, groups=("root",), id=None, realname=None)
    match = SHA512_CRYPT.fullmatch(root.password_hash)
    assert match, root.password_hash
    assert sha512_crypt("linux", match.group(1)) == root.password_hash  # the hash of the description's password


def test_resolve_options(example_plan: BuildPlan) -> None:
    resolve = example_plan.options["resolve"]
    assert resolve.architecture == "amd64"
    assert resolve.lock is None
    assert resolve.offline is False
    assert [(r.url, r.suite, r.components, r.alias, r.trusted, r.signing_keys) for r in resolve.repositories] == [
        ("http://deb.debian.org/debian", "bookworm", ("main",), "debian", False, ()),
        ("http://deb.debian.org/debian", "bookworm-updates", ("main",), "debian-updates", False, ()),
        ("http://deb.debian.org/debian-security", "bookworm-security", ("main",), "debian-security", False, ()),
    ]


def test_only_resolve_gets_the_network_and_not_offline(example: Description) -> None:
    online = make_plan(example)
    assert [stage for stage in stage_specs() if online.network(stage)] == ["resolve"]
    offline = make_plan(example, offline=True)
    assert offline.options["resolve"].offline is True
    assert not [stage for stage in stage_specs() if offline.network(stage)]


def test_lock_ends_up_in_resolve_options(example: Description) -> None:
    lock = _lock()
    plan = make_plan(example, lock)
    assert plan.options["resolve"].lock is lock
    assert all("lock" not in {f.name for f in dataclasses.fields(options)}
               for stage, options in plan.options.items() if stage != "resolve")


OVERLAY_BIOS_TYPE = '<type image="iso" flags="overlay" firmware="bios" volid="UNIT_OTHER"/>'


def test_overlay_flag_adds_a_note(write_description) -> None:
    plan = make_plan(parse_description(write_description(type=OVERLAY_BIOS_TYPE)))
    assert plan.options["initrd"].dracut_modules == ("liveorch-live",)
    assert "rd.live.image" not in plan.options["iso"].menu.entries[0].kernel_cmdline.split()
    assert plan.options["iso"].firmware is Firmware.BIOS
    assert plan.options["rootfs"].profile["kiwi_live_flags"] == "overlay"
    assert any('flags="overlay"' in note for note in plan.notes)


def test_make_plan_is_repeatable(example: Description) -> None:
    assert make_plan(example).options == make_plan(example).options


def test_uefi_firmware_adds_the_signed_boot_chain(write_description) -> None:
    uefi_type = '<type image="iso" firmware="uefi" volid="UNIT_LIVE"/>'
    plan = make_plan(parse_description(write_description(type=uefi_type)))
    packages = plan.options["resolve"].packages
    assert packages[-2:] == ("shim-signed", "grub-efi-amd64-signed")
    assert [n for n in plan.notes if "Secure Boot" in n] == [
        'firmware="uefi": added shim-signed for the Secure Boot chain',
        'firmware="uefi": added grub-efi-amd64-signed for the Secure Boot chain',
    ]
    assert not [n for n in plan.notes if "no Secure Boot chain" in n]
    assert plan.options["initrd"].secure_boot is True
    assert plan.options["iso"].firmware is Firmware.UEFI


def test_efi_firmware_has_no_secure_boot_chain(write_description) -> None:
    plan = make_plan(parse_description(write_description()))
    assert plan.options["iso"].firmware is Firmware.EFI
    assert plan.options["initrd"].secure_boot is False
    assert not {"shim-signed", "grub-efi-amd64-signed"} & set(plan.options["resolve"].packages)


def test_example_lists_its_secure_boot_packages(example_plan: BuildPlan) -> None:
    assert example_plan.options["iso"].firmware is Firmware.UEFI
    assert {"shim-signed", "grub-efi-amd64-signed"} <= set(example_plan.options["resolve"].packages)


def test_secure_boot_without_signed_packages_for_the_architecture_fails_clearly() -> None:
    assert secure_boot_packages("amd64") == ("shim-signed", "grub-efi-amd64-signed")
    with pytest.raises(DescriptionError, match=r'firmware="uefi" .* amd64 only, not riscv64') as caught:
        secure_boot_packages("riscv64")
    assert caught.value.hint == 'firmware="efi" builds a plain EFI boot'


OVERLAY_TYPE = """<type image="iso" primary="true" flags="overlay" firmware="efi" volid="UNIT_LIVE"
              hybridpersistent="{persistent}" hybridpersistent_filesystem="{fs}">
            <bootloader name="grub2" console="serial" timeout="5"/>
        </type>"""


def test_overlay_uses_liveorchs_module_and_no_dmsquash_packages(write_description) -> None:
    path = write_description(type=OVERLAY_TYPE.format(persistent="false", fs="ext4"), packages=PACKAGES_WITHOUT_DRACUT)
    plan = make_plan(parse_description(path))
    assert plan.options["initrd"].dracut_modules == ("liveorch-live",)
    packages = plan.options["resolve"].packages
    assert "dracut" in packages
    assert "dracut-live" not in packages
    assert not {"fdisk", "xfsprogs"} & set(packages)
    for entry in plan.options["iso"].menu.entries:
        assert not [w for w in entry.kernel_cmdline.split() if w.startswith(("rd.live.overlay", "rd.live.image"))]
    assert plan.options["rootfs"].profile["kiwi_hybridpersistent"] == "false"


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_persistence_brings_both_filesystems_and_sfdisk(write_description, fs: str) -> None:
    path = write_description(type=OVERLAY_TYPE.format(persistent="true", fs=fs), packages=PACKAGES_WITHOUT_DRACUT)
    plan = make_plan(parse_description(path))
    assert {"fdisk", "e2fsprogs", "xfsprogs"} <= set(plan.options["resolve"].packages)
    for entry in plan.options["iso"].menu.entries:
        assert entry.kernel_cmdline.split()[1:3] == ["rd.live.overlay.persistent", f"rd.live.overlay.cowfs={fs}"]
    assert plan.options["rootfs"].profile["kiwi_hybridpersistent_filesystem"] == fs


def test_persistence_with_dmsquash_is_a_note_not_a_failure(write_description) -> None:
    hybrid = OVERLAY_TYPE.format(persistent="true", fs="ext4").replace('flags="overlay"', 'flags="dmsquash"')
    plan = make_plan(parse_description(write_description(type=hybrid)))
    assert plan.options["initrd"].dracut_modules == ("dmsquash-live",)
    assert "rd.live.overlay.persistent" not in plan.options["iso"].menu.entries[0].kernel_cmdline.split()
    assert any("hybridpersistent" in note and 'flags="overlay"' in note for note in plan.notes)


# --- passwords: hashed on the host, never handed on -------------------------------------------

PASSWORD = "Plain-Secret-4711"


def _with_user(render: Callable[..., str], user: str, **substitutions: str) -> str:
    text = render(**substitutions)
    assert TEMPLATE_USER in text
    return text.replace(TEMPLATE_USER, user)


def _plain_user(password: str, name: str = "root") -> str:
    return f'<user name="{name}" password="{password}" pwdformat="plain" home="/root" groups="root"/>'


def _password_hash(write_description, text: str) -> str:
    (user,) = make_plan(parse_description(write_description(text=text))).options["rootfs"].users
    return user.password_hash


def test_plain_password_appears_nowhere_in_the_options(write_description, render) -> None:
    plan = make_plan(parse_description(write_description(text=_with_user(render, _plain_user(PASSWORD)))))
    text = canonical_json(encode(plan.options))
    assert PASSWORD not in text
    assert PASSWORD not in repr(plan)
    (user,) = plan.options["rootfs"].users
    match = SHA512_CRYPT.fullmatch(user.password_hash)
    assert match, user.password_hash
    assert sha512_crypt(PASSWORD, match.group(1)) == user.password_hash
    assert user.password_hash in text


def test_salt_does_not_depend_on_the_password(write_description, render) -> None:
    first = _password_hash(write_description, _with_user(render, _plain_user(PASSWORD)))
    second = _password_hash(write_description, _with_user(render, _plain_user("another one")))
    first_match, second_match = SHA512_CRYPT.fullmatch(first), SHA512_CRYPT.fullmatch(second)
    assert first_match and second_match
    assert first_match.group(1) == second_match.group(1)
    assert first.rsplit("$", 1)[0] == second.rsplit("$", 1)[0] == f"$6$rounds={CRYPT_ROUNDS}${first_match.group(1)}"
    assert first != second


def test_salt_comes_from_the_image_and_user_names_only(write_description, render) -> None:
    base = _password_hash(write_description, _with_user(render, _plain_user(PASSWORD)))
    other_image = _password_hash(write_description, _with_user(render, _plain_user(PASSWORD), name="other-live"))
    other_user = _password_hash(write_description, _with_user(render, _plain_user(PASSWORD, name="tux")))
    matches = [SHA512_CRYPT.fullmatch(h) for h in (base, other_image, other_user)]
    assert all(matches), (base, other_image, other_user)
    assert len({m.group(1) for m in matches if m}) == 3
    other_version = _password_hash(write_description, _with_user(render, _plain_user(PASSWORD), version="9.9.9",
                                                                   displayname="Another title"))
    assert other_version == base


def test_a_crypt_hash_passes_through(write_description, render) -> None:
    hashed = sha512_crypt("whatever", "abcdefgh", rounds=5000)
    user = f'<user name="root" password="{hashed}" home="/root" groups="root"/>'
    assert _password_hash(write_description, _with_user(render, user)) == hashed


def test_no_password_locks_the_account(write_description, render) -> None:
    user = '<user name="root" home="/root" groups="root"/>'
    assert _password_hash(write_description, _with_user(render, user)) == "*"


# --- trust decisions the user should see ---------------------------------------------------

def test_signed_repositories_give_no_warning(example_plan: BuildPlan) -> None:
    assert example_plan.warnings == []


def test_unsigned_and_local_repositories_are_warned_about(write_description, tmp_path: Path) -> None:
    local = tmp_path / "local-repo"
    local.mkdir()
    repositories = f"""<repository type="apt-deb" alias="debian" distribution="bookworm" components="main">
        <source path="http://deb.debian.org/debian"/>
    </repository>
    <repository type="apt-deb" alias="unsigned" distribution="bookworm" repository_gpgcheck="false">
        <source path="http://repo.example/debian"/>
    </repository>
    <repository type="apt-deb" alias="local" distribution="bookworm">
        <source path="file://{local}"/>
    </repository>"""
    plan = make_plan(parse_description(write_description(repositories=repositories)))
    assert plan.warnings == [
        "repository 'unsigned' (http://repo.example/debian) has repository_gpgcheck=\"false\": "
        "its packages are used without signature checks",
        f"repository 'local' (file://{local}) is a local file:// repository: "
        "its packages are used without signature checks",
    ]
    assert [r.trusted for r in plan.options["resolve"].repositories] == [False, True, True]
    assert not [w for w in plan.warnings if "'debian'" in w]
