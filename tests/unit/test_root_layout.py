"""The live root's layout: KIWI's iso `filesystem` ("squashfs", "ext4", "xfs", "erofs") and
`erofscompression`, from the description through the plan's stage options, the kernel command line,
the initrd's drivers, the report's live_root and `liveorch validate`. No container engine.

ext4 and xfs are the two layouts with a filesystem image inside the squashfs: dracut's
dmsquash-live puts a device-mapper snapshot over it, so both must plan the same boot and differ
only in the image's filesystem and the initrd driver that mounts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from liveorch.orchestrator import live_boot
from liveorch.orchestrator.cli import app
from liveorch.orchestrator.description import Description, LiveFlags, parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.pxe import NetworkImage
from liveorch.orchestrator.root_layout import (
    DEFAULT_EROFS,
    EROFS_BY_SUITE,
    RootLayout,
    check_kernel_support,
    parse_erofs_compression,
)
from liveorch.stages.contracts.initrd import InitrdOptions
from liveorch.stages.contracts.squashfs import (
    Compression,
    ErofsAlgorithm,
    ErofsCompression,
    RootFilesystem,
    SquashfsOptions,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"
OVERLAYFS = "rd.live.overlay.overlayfs=1"
LIVE_IMAGE = "rd.live.image"
ROOT = "root=live:CDLABEL=BOOKWORM_LIVE"
# The example's <type image="iso"> element's line as lxml reports it (its start tag spans three lines).
EXAMPLE_TYPE_LINE = etree.parse(str(EXAMPLE)).find("preferences/type").sourceline


def example(*type_attrs: str) -> Description:
    """examples/bookworm-live (flags=dmsquash, a bookworm repository first) with --set-type-attr changes."""
    return parse_description(EXAMPLE, overrides=Overrides(type_attrs=list(type_attrs)))


def cmdline(description: Description) -> list[str]:
    return live_boot.kernel_cmdline(description.live, ROOT).split()


def iso_type(attributes: str = "") -> str:
    """A <type image="iso"> for the conftest template, its start tag on one line: libxml2 gives an
    element the line its start tag ends on, so only then is that the line `<type ` is on."""
    return (f'<type image="iso" primary="true" flags="dmsquash" firmware="efi" volid="UNIT_LIVE" {attributes} '
            'kernelcmdline="quiet" squashfscompression="xz">\n'
            '            <bootloader name="grub2" console="serial" timeout="5"/>\n'
            '        </type>')


def repository(distribution: str) -> str:
    return (f'<repository type="apt-deb" alias="debian" distribution="{distribution}" components="main">\n'
            '        <source path="http://deb.debian.org/debian"/>\n'
            '    </repository>')


# Plans hash the root password; each variant is planned once per module.
@pytest.fixture(scope="module")
def squashfs_plan() -> tuple[Description, BuildPlan]:
    description = example()
    return description, make_plan(description)


@pytest.fixture(scope="module")
def ext4_plan() -> tuple[Description, BuildPlan]:
    description = example("filesystem=ext4")
    return description, make_plan(description)


@pytest.fixture(scope="module")
def xfs_plan() -> tuple[Description, BuildPlan]:
    description = example("filesystem=xfs")
    return description, make_plan(description)


@pytest.fixture(scope="module")
def erofs_plan() -> tuple[Description, BuildPlan]:
    description = example("filesystem=erofs", "erofscompression=lz4hc,12")
    return description, make_plan(description)


# --- no filesystem attribute: the root straight in squashfs ----------------------------------------


def test_no_filesystem_attribute_means_the_squashfs_layout_without_erofs(squashfs_plan) -> None:
    description, _ = squashfs_plan
    assert description.live.layout.filesystem is RootFilesystem.SQUASHFS
    assert description.live.layout.erofs is None
    assert description.live.layout.line == EXAMPLE_TYPE_LINE


def test_default_layout_plans_a_plain_squashfs_and_no_extra_initrd_drivers(squashfs_plan) -> None:
    _, plan = squashfs_plan
    assert plan.options["squashfs"] == SquashfsOptions(filesystem=RootFilesystem.SQUASHFS,
                                                       compression=Compression.ZSTD, erofs=None)
    assert plan.options["initrd"].drivers == ()
    assert plan.live_root == {"filesystem": "squashfs", "erofscompression": None,
                              "medium": "root directly in LiveOS/squashfs.img",
                              "overlay": "made writable by overlayfs (dracut's dmsquash-live) "
                                         '(filesystem="ext4" or "xfs" gives the device-mapper snapshot)',
                              "verity_blocks": None}


def test_default_layout_dmsquash_cmdline_asks_dracut_for_overlayfs(squashfs_plan) -> None:
    description, _ = squashfs_plan
    words = cmdline(description)
    assert words[:3] == [ROOT, LIVE_IMAGE, OVERLAYFS]


def test_squashfs_is_also_accepted_when_written_out() -> None:
    assert example("filesystem=squashfs").live.layout == example().live.layout


# --- filesystem="ext4": rootfs.img inside the squashfs, a device-mapper snapshot ----------------


def test_ext4_layout_is_parsed_without_erofs_compression(ext4_plan) -> None:
    description, _ = ext4_plan
    assert description.live.layout == RootLayout(RootFilesystem.EXT4, None, EXAMPLE_TYPE_LINE)


def test_ext4_dmsquash_cmdline_has_live_image_but_no_overlayfs(ext4_plan) -> None:
    description, _ = ext4_plan
    words = cmdline(description)
    assert words[:2] == [ROOT, LIVE_IMAGE]
    assert OVERLAYFS not in words
    assert not [w for w in words if w.startswith("rd.live.overlay")]


def test_ext4_plans_ext4_in_squashfs_and_the_snapshot_drivers(ext4_plan) -> None:
    _, plan = ext4_plan
    assert plan.options["squashfs"] == SquashfsOptions(filesystem=RootFilesystem.EXT4,
                                                       compression=Compression.ZSTD, erofs=None)
    assert plan.options["initrd"] == InitrdOptions(dracut_modules=("dmsquash-live",), drivers=("ext4", "dm-snapshot"),
                                                   secure_boot=True)


def test_ext4_live_root_names_the_device_mapper_snapshot(ext4_plan) -> None:
    _, plan = ext4_plan
    assert plan.live_root["filesystem"] == "ext4"
    assert plan.live_root["erofscompression"] is None
    assert plan.live_root["medium"] == "ext4 root image LiveOS/rootfs.img inside LiveOS/squashfs.img"
    assert "device-mapper snapshot" in plan.live_root["overlay"]
    assert "overlayfs" not in plan.live_root["overlay"]


# --- filesystem="xfs": an XFS rootfs.img inside the squashfs, the same snapshot as ext4 ---------------


def test_in_squashfs_names_exactly_the_layouts_dmsquash_snapshots() -> None:
    """kernel_cmdline, the plan's overlay wording and the squashfs stage all branch on it: a
    layout wrongly in or out would boot with the wrong overlay."""
    assert {f for f in RootFilesystem if f.in_squashfs} == {RootFilesystem.EXT4, RootFilesystem.XFS}


def test_xfs_layout_is_parsed_without_erofs_compression(xfs_plan) -> None:
    description, _ = xfs_plan
    assert description.live.layout == RootLayout(RootFilesystem.XFS, None, EXAMPLE_TYPE_LINE)


def test_xfs_is_accepted_at_the_type_line_without_warnings(write_description, line) -> None:
    """It used to be refused (DescriptionError at the <type> line); now it parses like ext4."""
    path = write_description(type=iso_type('filesystem="xfs"'))
    description = parse_description(path)
    assert description.live.layout == RootLayout(RootFilesystem.XFS, None, line(path, "<type "))
    assert description.warnings == []


def test_xfs_plans_xfs_in_squashfs_and_its_snapshot_drivers(xfs_plan) -> None:
    _, plan = xfs_plan
    assert plan.options["squashfs"] == SquashfsOptions(filesystem=RootFilesystem.XFS,
                                                       compression=Compression.ZSTD, erofs=None)
    assert plan.options["initrd"] == InitrdOptions(dracut_modules=("dmsquash-live",), drivers=("xfs", "dm-snapshot"),
                                                   secure_boot=True)


def test_xfs_dmsquash_cmdline_has_live_image_but_no_overlayfs(xfs_plan) -> None:
    """dmsquash-live snapshots the XFS image: overlayfs=1 would make it overlay the squashfs instead."""
    description, _ = xfs_plan
    words = cmdline(description)
    assert words[:2] == [ROOT, LIVE_IMAGE]
    assert not [w for w in words if w.startswith("rd.live.overlay")]


def test_xfs_live_root_names_the_image_and_the_device_mapper_snapshot(xfs_plan) -> None:
    _, plan = xfs_plan
    assert plan.live_root == {"filesystem": "xfs", "erofscompression": None,
                              "medium": "xfs root image LiveOS/rootfs.img inside LiveOS/squashfs.img",
                              "overlay": "made writable by a device-mapper snapshot (dracut's dmsquash-live)",
                              "verity_blocks": None}


def test_xfs_and_ext4_plan_the_same_boot(xfs_plan, ext4_plan) -> None:
    """Both are found by dmsquash-live as LiveOS/rootfs.img: the menus must not differ, and the
    options only in the image's filesystem and the initrd's driver for it."""
    _, xfs = xfs_plan
    _, ext4 = ext4_plan
    assert xfs.options["iso"].menu == ext4.options["iso"].menu
    assert xfs.options["initrd"].dracut_modules == ext4.options["initrd"].dracut_modules
    assert xfs.options["squashfs"].compression is ext4.options["squashfs"].compression
    assert (xfs.options["initrd"].drivers, ext4.options["initrd"].drivers) == (("xfs", "dm-snapshot"),
                                                                               ("ext4", "dm-snapshot"))


# --- filesystem="erofs": LiveOS/rootfs.img on the medium, overlayfs on top -------------------------


def test_erofs_without_erofscompression_defaults_to_lz4hc_without_level() -> None:
    layout = example("filesystem=erofs").live.layout
    assert layout.filesystem is RootFilesystem.EROFS
    assert layout.erofs == DEFAULT_EROFS == ErofsCompression(ErofsAlgorithm.LZ4HC, None)
    assert str(layout.erofs) == "lz4hc"


def test_erofs_compression_with_a_level(erofs_plan) -> None:
    description, _ = erofs_plan
    assert description.live.layout.erofs == ErofsCompression(ErofsAlgorithm.LZ4HC, 12)
    assert not [w for w in description.warnings if "only; ignored" in w]


@pytest.mark.parametrize(("value", "expected"), [
    ("lz4", ErofsCompression(ErofsAlgorithm.LZ4, None)),
    ("lz4hc,12", ErofsCompression(ErofsAlgorithm.LZ4HC, 12)),
    ("lzma", ErofsCompression(ErofsAlgorithm.LZMA, None)),
    ("lzma,6", ErofsCompression(ErofsAlgorithm.LZMA, 6)),
    ("deflate,9", ErofsCompression(ErofsAlgorithm.DEFLATE, 9)),
    ("zstd", ErofsCompression(ErofsAlgorithm.ZSTD, None)),
])
def test_parse_erofs_compression_reads_kiwis_values(value: str, expected: ErofsCompression) -> None:
    parsed = parse_erofs_compression(value, Path("config.xml"), 3)
    assert parsed == expected
    assert str(parsed) == value


def test_erofs_plans_the_erofs_image_and_its_driver(erofs_plan) -> None:
    _, plan = erofs_plan
    assert plan.options["squashfs"] == SquashfsOptions(filesystem=RootFilesystem.EROFS, compression=Compression.ZSTD,
                                                       erofs=ErofsCompression(ErofsAlgorithm.LZ4HC, 12))
    assert plan.options["initrd"].drivers == ("erofs",)
    assert plan.live_root == {"filesystem": "erofs", "erofscompression": "lz4hc,12",
                              "medium": "EROFS root image LiveOS/rootfs.img (lz4hc,12)",
                              "overlay": "made writable by overlayfs (dracut's dmsquash-live) "
                                         '(filesystem="ext4" or "xfs" gives the device-mapper snapshot)',
                              "verity_blocks": None}


def test_erofs_dmsquash_cmdline_keeps_overlayfs(erofs_plan) -> None:
    description, _ = erofs_plan
    assert cmdline(description)[:3] == [ROOT, LIVE_IMAGE, OVERLAYFS]


@pytest.mark.parametrize("filesystem", ["squashfs", "ext4", "xfs", "erofs"])
def test_overlay_flags_cmdline_has_no_dmsquash_words_in_any_layout(filesystem: str) -> None:
    description = example("flags=overlay", f"filesystem={filesystem}")
    assert description.live.flags is LiveFlags.OVERLAY
    words = cmdline(description)
    assert LIVE_IMAGE not in words
    assert OVERLAYFS not in words
    assert live_boot.dracut_modules(description.live, network=False) == ("liveorch-live",)


def test_layout_drivers_per_filesystem() -> None:
    assert live_boot.layout_drivers(example().live) == ()
    assert live_boot.layout_drivers(example("filesystem=ext4").live) == ("ext4", "dm-snapshot")
    assert live_boot.layout_drivers(example("filesystem=xfs").live) == ("xfs", "dm-snapshot")
    assert live_boot.layout_drivers(example("filesystem=erofs").live) == ("erofs",)
    assert set(live_boot.LAYOUT_DRIVERS) == set(RootFilesystem)


def test_layout_drivers_with_overlay_flags_are_none_for_xfs_too() -> None:
    """liveorch's own module installs xfs for every layout: asking dracut for it again is not needed."""
    assert live_boot.layout_drivers(example("flags=overlay", "filesystem=xfs").live) == ()


# --- refused values, each at the <type> element's line ---------------------------------------------


def test_an_unknown_filesystem_is_refused_with_the_choices(write_description, refused_at_type_line) -> None:
    path = write_description(type=iso_type('filesystem="btrfs"'))
    message = refused_at_type_line(path)
    assert "filesystem='btrfs' must be one of squashfs, ext4, xfs, erofs" in message


def test_an_unknown_erofs_compressor_is_refused(write_description, refused_at_type_line) -> None:
    path = write_description(type=iso_type('filesystem="erofs" erofscompression="brotli"'))
    message = refused_at_type_line(path)
    assert "erofscompression='brotli': the compressor must be one of lz4, lz4hc, lzma, deflate, zstd" in message


@pytest.mark.parametrize("value", ["lz4hc,high", "zstd,\u00b2"], ids=["word", "unicode-digit"])
def test_a_non_numeric_erofs_level_is_refused(write_description, refused_at_type_line, value: str) -> None:
    path = write_description(type=iso_type(f'filesystem="erofs" erofscompression="{value}"'))
    message = refused_at_type_line(path)
    assert f"erofscompression={value!r}: the level after the comma must be a number" in message


@pytest.mark.parametrize(("value", "allowed"), [("lz4hc,13", "0-12"), ("zstd,23", "0-22"), ("lz4,5", "none")])
def test_an_erofs_level_out_of_range_is_refused(write_description, refused_at_type_line, value: str,
                                                 allowed: str) -> None:
    path = write_description(type=iso_type(f'filesystem="erofs" erofscompression="{value}"'))
    message = refused_at_type_line(path)
    assert f"levels for {value.split(',')[0]} are {allowed}" in message


def test_lzma_is_refused_for_bookworm_whose_kernel_cannot_decompress_it(write_description,
                                                                        refused_at_type_line) -> None:
    path = write_description(type=iso_type('filesystem="erofs" erofscompression="lzma"'),
                             repositories=repository("bookworm"))
    message = refused_at_type_line(path)
    assert 'erofscompression="lzma": the bookworm kernel cannot decompress lzma EROFS images' in message
    assert message.endswith("use lz4, lz4hc")


@pytest.mark.parametrize("value", ["lz4", "lz4hc", "lz4hc,12"])
def test_lz4_compressors_are_accepted_for_bookworm(write_description, value: str) -> None:
    path = write_description(type=iso_type(f'filesystem="erofs" erofscompression="{value}"'),
                             repositories=repository("bookworm"))
    assert str(parse_description(path).live.layout.erofs) == value


def test_lzma_is_left_to_the_stage_for_a_suite_not_known_here(write_description) -> None:
    assert "trixie" not in EROFS_BY_SUITE
    path = write_description(type=iso_type('filesystem="erofs" erofscompression="lzma"'),
                             repositories=repository("trixie"))
    assert parse_description(path).live.layout.erofs == ErofsCompression(ErofsAlgorithm.LZMA, None)


def test_the_suite_check_reads_the_first_repository_only() -> None:
    """The example's first repository is bookworm: lzma is refused there even through overrides."""
    with pytest.raises(DescriptionError) as caught:
        example("filesystem=erofs", "erofscompression=lzma")
    assert str(caught.value).startswith(f"{EXAMPLE}:{EXAMPLE_TYPE_LINE}: ")
    assert "the bookworm kernel cannot decompress lzma" in str(caught.value)


def test_check_kernel_support_ignores_layouts_without_erofs() -> None:
    check_kernel_support(RootLayout(RootFilesystem.EXT4, None, 5), "bookworm", Path("config.xml"))
    check_kernel_support(RootLayout(RootFilesystem.EROFS, ErofsCompression(ErofsAlgorithm.ZSTD, 3), 5), None,
                         Path("config.xml"))
    with pytest.raises(DescriptionError, match=r"^config\.xml:5: .*bookworm kernel cannot decompress zstd"):
        check_kernel_support(RootLayout(RootFilesystem.EROFS, ErofsCompression(ErofsAlgorithm.ZSTD, 3), 5),
                             "bookworm", Path("config.xml"))


# --- erofscompression where it does nothing ---------------------------------------------------------


@pytest.mark.parametrize("filesystem", ["", 'filesystem="squashfs"', 'filesystem="ext4"', 'filesystem="xfs"'])
def test_erofscompression_on_a_non_erofs_layout_is_a_warning_at_the_type_line(write_description, line,
                                                                              filesystem: str) -> None:
    path = write_description(type=iso_type(f'{filesystem} erofscompression="lzma"'))
    description = parse_description(path)
    assert description.live.layout.erofs is None
    ignored = [w for w in description.warnings if "erofscompression" in w and "only; ignored" in w]
    assert ignored == [f'{path}:{line(path, "<type ")}: erofscompression= applies to filesystem="erofs" only; '
                       'ignored (fix: remove it, or set filesystem="erofs")']


def test_erofscompression_is_not_reported_as_unknown_markup(write_description) -> None:
    path = write_description(type=iso_type('filesystem="erofs" erofscompression="lz4hc,12"'))
    assert parse_description(path).warnings == []


def test_erofscompression_on_a_non_erofs_layout_is_ignored_once_not_also_as_unknown(write_description) -> None:
    path = write_description(type=iso_type('filesystem="ext4" erofscompression="lzma"'))
    warnings = parse_description(path).warnings
    assert len(warnings) == 1
    assert "unknown attribute" not in warnings[0]


# --- network boot -----------------------------------------------------------------------------------


@pytest.mark.parametrize("filesystem", ["ext4", "xfs", "erofs"])
def test_pxe_url_is_refused_for_a_non_squashfs_layout(filesystem: str) -> None:
    description = example(f"filesystem={filesystem}")
    with pytest.raises(DescriptionError) as caught:
        make_plan(description, pxe_url="http://example/", pxe_image=NetworkImage.SQUASHFS)
    message = str(caught.value)
    assert message.startswith(f"{EXAMPLE}:{EXAMPLE_TYPE_LINE}: ")
    assert "--pxe-image squashfs" in message
    assert f'filesystem="{filesystem}"' in message


def test_pxe_url_still_works_for_the_squashfs_layout() -> None:
    plan = make_plan(example(), pxe_url="http://example/", pxe_image=NetworkImage.SQUASHFS)
    assert plan.pxe is not None
    words = plan.pxe.kernel_cmdline.split()
    assert words[:3] == ["root=live:http://example/squashfs.img", LIVE_IMAGE, OVERLAYFS]


# --- liveorch validate -------------------------------------------------------------------------------


def test_validate_prints_the_ext4_live_root_before_ok() -> None:
    result = CliRunner().invoke(app, ["validate", "--set-type-attr", "filesystem=ext4", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    live_root = [n for n, text in enumerate(lines) if text.startswith("live root: ")]
    ok = [n for n, text in enumerate(lines) if f"{EXAMPLE}: ok:" in text]
    assert len(live_root) == 1 and len(ok) == 1
    assert live_root[0] < ok[0]
    assert lines[live_root[0]] == ("live root: ext4 root image LiveOS/rootfs.img inside LiveOS/squashfs.img, "
                                   "made writable by a device-mapper snapshot (dracut's dmsquash-live)")
    assert "device-mapper snapshot" in lines[live_root[0]]


def test_validate_prints_the_default_live_root() -> None:
    result = CliRunner().invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "live root: root directly in LiveOS/squashfs.img, made writable by overlayfs" in result.stdout


def test_validate_prints_the_xfs_live_root_before_ok(write_description) -> None:
    """xfs used to end validate with exit 2; now it is planned and described like ext4."""
    path = write_description(type=iso_type('filesystem="xfs"'))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == ("live root: xfs root image LiveOS/rootfs.img inside LiveOS/squashfs.img, "
                        "made writable by a device-mapper snapshot (dracut's dmsquash-live)")
    assert lines[1].startswith(f"{path}: ok: ")
    assert len(lines) == 2
