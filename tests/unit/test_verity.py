"""KIWI's `verity_blocks` on <type image="iso">, the description and plan side: parsing and refusing
its values, the layout check against dmsquash-live, the boot parameters and dracut modules it
changes, and what the plan hands to the stages and the report. No container engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from liveorch.orchestrator import live_boot
from liveorch.orchestrator.cli import app
from liveorch.orchestrator.description import Description, LiveFlags, LiveType, parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.kiwi_schema import unknown_markup
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.root_layout import DEFAULT_EROFS, RootLayout, check_verity, parse_verity
from liveorch.stages.contracts.initrd import LIVEORCH_LIVE, LIVEORCH_VERITY
from liveorch.stages.contracts.iso import VERITY_DEVICE, Verity
from liveorch.stages.contracts.squashfs import RootFilesystem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"
EXAMPLE_TYPE_LINE = etree.parse(str(EXAMPLE)).find("preferences/type").sourceline
VERITY_ROOT = f"root=live:/dev/mapper/{VERITY_DEVICE}"
DMSETUP_NOTE = "verity_blocks: added dmsetup to open the root through dm-verity"
PXE_URL = "http://example/"


def example(*type_attrs: str) -> Description:
    """examples/bookworm-live (flags=dmsquash, squashfs) with --set-type-attr changes."""
    return parse_description(EXAMPLE, overrides=Overrides(type_attrs=list(type_attrs)))


def iso_type(attributes: str = "", flags: str = "dmsquash") -> str:
    """A <type image="iso"> whose start tag is on one line, so its sourceline is the `<type ` line."""
    return (f'<type image="iso" primary="true" flags="{flags}" firmware="efi" volid="UNIT_LIVE" {attributes} '
            'kernelcmdline="quiet" squashfscompression="xz">\n'
            '            <bootloader name="grub2" console="serial" timeout="5"/>\n'
            '        </type>')


def type_element(attributes: str) -> etree._Element:
    """A bare <type> on line 3 of its document, for calling parse_verity directly."""
    return etree.fromstring(f"<image>\n<preferences>\n<type image=\"iso\" {attributes}/></preferences></image>"
                            ).find("preferences/type")


def live(flags: LiveFlags = LiveFlags.DMSQUASH, verity: Verity | None = None, **changes: object) -> LiveType:
    return dataclasses.replace(LiveType(volid="TEST_LIVE", flags=flags, layout=RootLayout(verity=verity)),
                               **changes)


# Plans hash the root password: each variant is planned once per module.
@pytest.fixture(scope="module")
def dmsquash_plan() -> tuple[Description, BuildPlan]:
    description = example("verity_blocks=all")
    return description, make_plan(description)


@pytest.fixture(scope="module")
def overlay_plan() -> tuple[Description, BuildPlan]:
    description = example("flags=overlay", "verity_blocks=256")
    return description, make_plan(description)


@pytest.fixture(scope="module")
def overlay_plain_plan() -> BuildPlan:
    """flags="overlay" without verity, to tell what verity itself adds."""
    return make_plan(example("flags=overlay"))


# --- parse_verity: "all" or a positive number of 4 KiB blocks -------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("all", Verity(None)),
    ("1", Verity(1)),
    ("4096", Verity(4096)),
    ("999999999999", Verity(999_999_999_999)),
])
def test_parse_verity_reads_all_and_block_counts(value: str, expected: Verity) -> None:
    verity = parse_verity(type_element(f'verity_blocks="{value}"'), Path("config.xml"))
    assert verity == expected
    assert str(verity) == value  # the report shows what the description said


def test_no_verity_blocks_attribute_means_no_verity() -> None:
    assert parse_verity(type_element('filesystem="ext4"'), Path("config.xml")) is None
    assert example().live.layout.verity is None


@pytest.mark.parametrize("value", ["0", "-1", "x", "", "ALL", "all ", " 7", "+3", "1.5", "1e3", "\uff17"],
                         ids=["zero", "negative", "word", "empty", "upper-all", "trailing-space", "leading-space",
                              "plus", "fraction", "exponent", "fullwidth-digit"])
def test_parse_verity_refuses_anything_else_naming_file_and_line(value: str) -> None:
    """The element's own line: the user finds the attribute without searching."""
    with pytest.raises(DescriptionError) as caught:
        parse_verity(type_element(f'verity_blocks="{value}"'), Path("conf/config.xml"))
    message = str(caught.value)
    assert message.startswith("conf/config.xml:3: "), message
    assert f"verity_blocks={value!r}" in message
    assert '"all" or a positive number of 4 KiB blocks' in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("value", ["0", "-1", "x", ""])
def test_a_bad_verity_blocks_in_a_description_is_refused_at_the_type_line(write_description, refused_at_type_line,
                                                                            value: str) -> None:
    path = write_description(type=iso_type(f'verity_blocks="{value}"'))
    message = refused_at_type_line(path)
    assert f"verity_blocks={value!r} must be" in message


def test_a_bad_verity_blocks_from_set_type_attr_is_refused_naming_the_option() -> None:
    with pytest.raises(DescriptionError) as caught:
        example("verity_blocks=0")
    assert str(caught.value).startswith("--set-type-attr verity_blocks=0: verity_blocks='0'")


# --- parse_layout: verity next to every filesystem ---------------------------------------------------


@pytest.mark.parametrize(("attrs", "filesystem"), [
    ((), RootFilesystem.SQUASHFS),
    (("filesystem=ext4",), RootFilesystem.EXT4),
    (("flags=overlay", "filesystem=erofs"), RootFilesystem.EROFS),
])
def test_verity_is_parsed_beside_each_filesystem(attrs: tuple[str, ...], filesystem: RootFilesystem) -> None:
    layout = example(*attrs, "verity_blocks=all").live.layout
    assert layout.filesystem is filesystem
    assert layout.verity == Verity(None)
    assert layout.line == EXAMPLE_TYPE_LINE


def test_verity_does_not_change_the_erofs_compression() -> None:
    layout = example("flags=overlay", "filesystem=erofs", "erofscompression=lz4hc,9", "verity_blocks=8").live.layout
    assert layout == dataclasses.replace(example("flags=overlay", "filesystem=erofs",
                                                 "erofscompression=lz4hc,9").live.layout, verity=Verity(8))


def test_verity_blocks_is_not_reported_as_unknown_markup(write_description) -> None:
    path = write_description(type=iso_type('verity_blocks="all"'))
    assert parse_description(path).warnings == []


def test_a_misspelt_verity_attribute_is_still_reported_as_unknown() -> None:
    """The schema check still runs on <type>: only the exact name is known."""
    root = etree.fromstring('<image><preferences><type image="iso" verity_blocks="all" verity_block="all"/>'
                            "</preferences></image>")
    assert unknown_markup(root, Path("config.xml")) == [
        "config.xml:1: unknown attribute verity_block= on <type> ignored (fix: did you mean verity_blocks=?)"]


# --- check_verity: dmsquash-live opens a verity device holding a squashfs only -----------------------


def test_erofs_with_verity_under_dmsquash_is_refused_at_the_type_line(write_description, refused_at_type_line) -> None:
    path = write_description(type=iso_type('filesystem="erofs" verity_blocks="all"'))
    message = refused_at_type_line(path)
    assert 'verity_blocks with filesystem="erofs" needs flags="overlay"' in message


@pytest.mark.parametrize(("attrs", "flags"), [
    ('filesystem="erofs" verity_blocks="all"', "overlay"),
    ('filesystem="squashfs" verity_blocks="all"', "dmsquash"),
    ('filesystem="ext4" verity_blocks="12"', "dmsquash"),
    ('filesystem="erofs"', "dmsquash"),
], ids=["erofs-overlay", "squashfs-dmsquash", "ext4-dmsquash", "erofs-dmsquash-no-verity"])
def test_the_other_verity_combinations_are_accepted(write_description, attrs: str, flags: str) -> None:
    description = parse_description(write_description(type=iso_type(attrs, flags)))
    assert description.live.flags is LiveFlags(flags)
    assert description.warnings == []


def test_check_verity_directly() -> None:
    path = Path("config.xml")
    erofs = RootLayout(RootFilesystem.EROFS, DEFAULT_EROFS, 5, Verity(None))
    with pytest.raises(DescriptionError) as caught:
        check_verity(erofs, dmsquash=True, path=path)
    assert str(caught.value).startswith("config.xml:5: ")
    check_verity(erofs, dmsquash=False, path=path)
    check_verity(dataclasses.replace(erofs, verity=None), dmsquash=True, path=path)
    check_verity(RootLayout(RootFilesystem.SQUASHFS, None, 5, Verity(3)), dmsquash=True, path=path)


# --- RootLayout.describe -----------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "expected"), [
    (RootLayout(verity=Verity(None)), "root directly in LiveOS/squashfs.img, opened through dm-verity (every block)"),
    (RootLayout(RootFilesystem.EXT4, verity=Verity(256)),
     "ext4 root image LiveOS/rootfs.img inside LiveOS/squashfs.img, opened through dm-verity "
     "(its first 256 4 KiB blocks)"),
    (RootLayout(RootFilesystem.EROFS, DEFAULT_EROFS, verity=Verity(None)),
     "EROFS root image LiveOS/rootfs.img (lz4hc), opened through dm-verity (every block)"),
    (RootLayout(RootFilesystem.EROFS, DEFAULT_EROFS), "EROFS root image LiveOS/rootfs.img (lz4hc)"),
])
def test_describe_names_dm_verity_and_its_coverage(layout: RootLayout, expected: str) -> None:
    assert layout.describe() == expected


# --- live_boot: root=, media check and dracut modules -------------------------------------------------


def test_dmsquash_with_verity_boots_from_the_verity_device() -> None:
    """dmsquash-live takes the verity device as its medium; the label is in the verity initramfs."""
    assert live_boot.medium_root("MY LIVE", live(verity=Verity(None))) == VERITY_ROOT
    assert live_boot.medium_root("MY LIVE", live(verity=Verity(9))) == VERITY_ROOT


@pytest.mark.parametrize(("flags", "verity"), [
    (LiveFlags.DMSQUASH, None), (LiveFlags.OVERLAY, None), (LiveFlags.OVERLAY, Verity(None)),
])
def test_otherwise_root_is_the_volume_label(flags: LiveFlags, verity: Verity | None) -> None:
    """liveorch's own live module finds the medium by label and opens verity itself."""
    assert live_boot.medium_root("MY LIVE", live(flags, verity)) == "root=live:CDLABEL=MY\\x20LIVE"


@pytest.mark.parametrize(("flags", "verity", "expected"), [
    (LiveFlags.DMSQUASH, None, "rd.live.check"),
    (LiveFlags.DMSQUASH, Verity(None), live_boot.VERITY_CHECK),
    (LiveFlags.OVERLAY, None, "mediacheck=1"),
    (LiveFlags.OVERLAY, Verity(4), f"mediacheck=1 {live_boot.VERITY_CHECK}"),
])
def test_media_check_per_live_module_and_verity(flags: LiveFlags, verity: Verity | None, expected: str) -> None:
    """rd.live.check under verity would checksum the verity device, not the ISO."""
    assert live_boot.media_check(live(flags, verity)) == expected


def test_dmsquash_verity_menu_uses_the_verity_root_and_check_everywhere() -> None:
    menu = live_boot.boot_menu(live(verity=Verity(None), mediacheck=True), "TEST_LIVE", "Test")
    assert [entry.title for entry in menu.entries] == ["Test", "Check installation media", "Test (failsafe)"]
    for cmdline in [entry.kernel_cmdline for entry in menu.entries] + [menu.loopback_cmdline]:
        words = cmdline.split()
        assert [w for w in words if w.startswith("root=")] == [VERITY_ROOT]
        assert "rd.live.check" not in words
    check = menu.entries[1].kernel_cmdline.split()
    assert check[-1] == live_boot.VERITY_CHECK
    assert live_boot.VERITY_CHECK not in menu.entries[0].kernel_cmdline.split()


@pytest.mark.parametrize(("flags", "network", "expected"), [
    (LiveFlags.DMSQUASH, False, ("dmsquash-live", LIVEORCH_VERITY)),
    (LiveFlags.OVERLAY, False, (LIVEORCH_LIVE, LIVEORCH_VERITY)),
    (LiveFlags.DMSQUASH, True, ("dmsquash-live", LIVEORCH_VERITY, "livenet", "network-legacy")),
    (LiveFlags.OVERLAY, True, (LIVEORCH_LIVE, LIVEORCH_VERITY, "url-lib", "network-legacy")),
])
def test_dracut_modules_add_liveorch_verity(flags: LiveFlags, network: bool, expected: tuple[str, ...]) -> None:
    assert live_boot.dracut_modules(live(flags, Verity(None)), network) == expected
    without = live_boot.dracut_modules(live(flags), network)
    assert LIVEORCH_VERITY not in without
    assert without == tuple(m for m in expected if m != LIVEORCH_VERITY)


# --- the plan -----------------------------------------------------------------------------------------


def test_the_plan_hands_verity_to_the_iso_stage(dmsquash_plan, overlay_plan) -> None:
    assert dmsquash_plan[1].options["iso"].verity == Verity(None)
    assert overlay_plan[1].options["iso"].verity == Verity(256)
    assert make_plan(example()).options["iso"].verity is None


def test_the_plan_asks_the_initrd_for_the_verity_module(dmsquash_plan, overlay_plan) -> None:
    assert dmsquash_plan[1].options["initrd"].dracut_modules == ("dmsquash-live", LIVEORCH_VERITY)
    assert overlay_plan[1].options["initrd"].dracut_modules == (LIVEORCH_LIVE, LIVEORCH_VERITY)


def test_dmsquash_verity_menu_boots_the_verity_device(dmsquash_plan) -> None:
    menu = dmsquash_plan[1].options["iso"].menu
    assert {entry.kernel_cmdline.split()[0] for entry in menu.entries} == {VERITY_ROOT}


def test_overlay_with_verity_adds_dmsetup_with_a_note(overlay_plan, overlay_plain_plan) -> None:
    _, plan = overlay_plan
    packages = plan.options["resolve"].packages
    assert packages.count("dmsetup") == 1
    assert plan.notes == [*overlay_plain_plan.notes, DMSETUP_NOTE]
    assert packages == (*overlay_plain_plan.options["resolve"].packages, "dmsetup")


def test_overlay_without_verity_adds_no_dmsetup(overlay_plain_plan) -> None:
    assert "dmsetup" not in overlay_plain_plan.options["resolve"].packages
    assert DMSETUP_NOTE not in overlay_plain_plan.notes


def test_dmsquash_with_verity_adds_no_dmsetup(dmsquash_plan) -> None:
    """dracut-live, which dmsquash needs anyway, depends on it."""
    _, plan = dmsquash_plan
    assert "dmsetup" not in plan.options["resolve"].packages
    assert not [note for note in plan.notes if "verity" in note]


def test_dmsetup_listed_by_the_description_is_not_added_again(write_description) -> None:
    packages = ('<packages type="image">\n'
                '        <package name="linux-image-amd64"/>\n'
                '        <package name="dracut"/>\n'
                '        <package name="dmsetup"/>\n'
                "    </packages>")
    path = write_description(type=iso_type('verity_blocks="all"', "overlay"), packages=packages)
    plan = make_plan(parse_description(path))
    assert plan.options["resolve"].packages.count("dmsetup") == 1
    assert DMSETUP_NOTE not in plan.notes


@pytest.mark.parametrize("attrs", [("verity_blocks=all",), ("flags=overlay", "verity_blocks=8")])
def test_pxe_url_refuses_a_verity_root_at_the_type_line(attrs: tuple[str, ...]) -> None:
    """The hash tree and root hash travel on the ISO, which a network boot does not read."""
    with pytest.raises(DescriptionError) as caught:
        make_plan(example(*attrs), pxe_url=PXE_URL)
    message = str(caught.value)
    assert message.startswith(f"{EXAMPLE}:{EXAMPLE_TYPE_LINE}: --pxe does not serve a verity root"), message
    assert "verity_blocks" in message


def test_live_root_reports_verity_blocks(dmsquash_plan, overlay_plan) -> None:
    dmsquash = dmsquash_plan[1].live_root
    assert dmsquash["verity_blocks"] == "all"
    assert dmsquash["medium"] == "root directly in LiveOS/squashfs.img, opened through dm-verity (every block)"
    overlay = overlay_plan[1].live_root
    assert overlay["verity_blocks"] == "256"
    assert overlay["medium"].endswith("opened through dm-verity (its first 256 4 KiB blocks)")


def test_validate_prints_the_verity_live_root() -> None:
    result = CliRunner().invoke(app, ["validate", "--set-type-attr", "verity_blocks=all", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert ("live root: root directly in LiveOS/squashfs.img, opened through dm-verity (every block), "
            "made writable by overlayfs") in result.stdout


def test_validate_refuses_erofs_verity_under_dmsquash_without_a_traceback() -> None:
    result = CliRunner().invoke(app, ["validate", "--set-type-attr", "filesystem=erofs", "--set-type-attr",
                                      "verity_blocks=all", str(EXAMPLE)])
    assert result.exit_code == 2
    assert f"liveorch: error: {EXAMPLE}:{EXAMPLE_TYPE_LINE}: verity_blocks with filesystem=\"erofs\"" in result.stderr
    assert "Traceback" not in result.output
