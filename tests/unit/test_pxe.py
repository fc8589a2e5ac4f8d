"""run --pxe: what the planner adds, and the network-boot bundle's configs and server."""

from __future__ import annotations

import dataclasses
import threading
import urllib.request
from pathlib import Path

import pytest

from liveorch.orchestrator import pxe, pxe_bundle
from liveorch.orchestrator.boot import BootMode, BootScript, pxe_nic, qemu_argv, uefi_pxe_devices
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import LiveorchError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import NETWORK_BOOT_PACKAGES, make_plan
from liveorch.orchestrator.pxe import NetworkImage
from liveorch.stages.contracts.iso import NETBOOT_LOADER
from liveorch.stages.contracts.iso import SPEC as ISO_SPEC

URL = "http://10.0.2.2:8000/"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OVERLAY_TYPE = """<type image="iso" primary="true" flags="overlay" firmware="efi" volid="UNIT_LIVE"
              kernelcmdline="console=ttyS0,115200 quiet" hybridpersistent="true">
            <bootloader name="grub2" console="serial" timeout="5"/>
        </type>"""


def test_without_pxe_nothing_network_is_added(write_description) -> None:
    plan = make_plan(parse_description(write_description()))
    assert plan.pxe is None
    assert not set(NETWORK_BOOT_PACKAGES) & set(plan.options["resolve"].packages)
    assert plan.options["initrd"].dracut_modules == ("dmsquash-live",)
    assert plan.options["iso"].netboot_loader is False


def test_pxe_dmsquash_adds_dracut_network_curl_and_livenet(write_description) -> None:
    plan = make_plan(parse_description(write_description()), pxe_url=URL, pxe_image=NetworkImage.SQUASHFS)
    packages = plan.options["resolve"].packages
    assert {"dracut-network", "procps", "curl", "dracut-live"} <= set(packages)
    assert plan.options["initrd"].dracut_modules == ("dmsquash-live", "livenet", "network-legacy")
    assert plan.pxe is not None
    assert plan.pxe.url == URL
    assert plan.pxe.image_url == URL + "squashfs.img"
    assert plan.pxe.title == plan.options["iso"].title == "Unit test live"
    assert plan.options["iso"].netboot_loader is True
    assert any("--pxe: added curl" in note for note in plan.notes)


def test_pxe_overlay_adds_url_lib_beside_liveorchs_module(write_description) -> None:
    plan = make_plan(parse_description(write_description(type=OVERLAY_TYPE)), pxe_url=URL)
    assert plan.options["initrd"].dracut_modules == ("liveorch-live", "url-lib", "network-legacy")
    assert {"dracut-network", "curl"} <= set(plan.options["resolve"].packages)


def test_pxe_keeps_packages_the_description_already_has(write_description) -> None:
    packages = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut"/>
        <package name="dracut-live"/>
        <package name="curl"/>
        <package name="procps"/>
        <package name="dracut-network"/>
    </packages>"""
    plan = make_plan(parse_description(write_description(packages=packages)), pxe_url=URL)
    names = plan.options["resolve"].packages
    assert names.count("curl") == 1 and names.count("dracut-network") == 1
    assert not any("--pxe" in note for note in plan.notes)


def test_pxe_url_changes_no_stage_option(write_description) -> None:
    """The URL lives only in the exported configs: a new URL re-runs no stage."""
    description = parse_description(write_description())
    first = make_plan(description, pxe_url=URL, pxe_image=NetworkImage.SQUASHFS)
    second = make_plan(description, pxe_url="https://x.example/l/", pxe_image=NetworkImage.SQUASHFS)
    assert first.options == second.options
    assert first.pxe is not None and second.pxe is not None
    assert first.pxe.kernel_cmdline.split()[0] == "root=live:http://10.0.2.2:8000/squashfs.img"
    assert second.pxe.kernel_cmdline.split()[0] == "root=live:https://x.example/l/squashfs.img"
    assert first.pxe.kernel_cmdline.split()[1:] == second.pxe.kernel_cmdline.split()[1:]


def test_dmsquash_cmdline_uses_livenet_and_dhcp(example_config: Path) -> None:
    plan = make_plan(parse_description(example_config), pxe_url=URL, pxe_image=NetworkImage.SQUASHFS)
    assert plan.pxe is not None
    assert plan.pxe.kernel_cmdline == ("root=live:http://10.0.2.2:8000/squashfs.img rd.live.image "
                                       "rd.live.overlay.overlayfs=1 ip=dhcp rd.neednet=1 "
                                       "console=tty0 console=ttyS0,115200")


def test_overlay_cmdline_adds_serial_console_when_none_given(write_description) -> None:
    overlay = OVERLAY_TYPE.replace('kernelcmdline="console=ttyS0,115200 quiet"', 'kernelcmdline="quiet"')
    plan = make_plan(parse_description(write_description(type=overlay)),
                     pxe_url=pxe.check_url("https://boot.example/live"), pxe_image=NetworkImage.SQUASHFS)
    assert plan.pxe is not None
    assert plan.pxe.kernel_cmdline == ("root=live:https://boot.example/live/squashfs.img ip=dhcp rd.neednet=1 quiet "
                                       "console=tty0 console=ttyS0,115200")


def test_overlay_cmdline_keeps_the_descriptions_console_and_drops_persistence(write_description) -> None:
    """hybridpersistent is for the medium: a network boot has none to keep the write layer on."""
    description = parse_description(write_description(type=OVERLAY_TYPE))
    plan = make_plan(description, pxe_url=URL, pxe_image=NetworkImage.SQUASHFS)
    assert plan.pxe is not None
    assert plan.pxe.kernel_cmdline == ("root=live:http://10.0.2.2:8000/squashfs.img ip=dhcp rd.neednet=1 "
                                       "console=ttyS0,115200 quiet")
    assert "rd.live.overlay.persistent" in plan.options["iso"].menu.entries[0].kernel_cmdline.split()


@pytest.mark.parametrize(("given", "expected"), [
    ("http://10.0.2.2:8000", "http://10.0.2.2:8000/"),
    ("https://boot.example/live/", "https://boot.example/live/"),
])
def test_check_url_adds_the_trailing_slash(given: str, expected: str) -> None:
    assert pxe.check_url(given) == expected


@pytest.mark.parametrize("bad", ["tftp://10.0.2.2/", "10.0.2.2:8000", "http://", "http://a b/"])
def test_check_url_refuses_what_cannot_fetch_the_image(bad: str) -> None:
    with pytest.raises(LiveorchError) as error:
        pxe.check_url(bad)
    assert "--pxe-url" in error.value.message


def test_configs_boot_the_bundles_kernel_and_initrd_with_the_same_cmdline(write_description) -> None:
    overlay = OVERLAY_TYPE.replace('kernelcmdline="console=ttyS0,115200 quiet"', 'kernelcmdline="console=ttyS0,115200"')
    bundle = make_plan(parse_description(write_description(type=overlay, displayname="My live")), pxe_url=URL,
                       pxe_image=NetworkImage.SQUASHFS).pxe
    assert bundle is not None
    assert bundle.kernel_cmdline == ("root=live:http://10.0.2.2:8000/squashfs.img ip=dhcp rd.neednet=1 "
                                     "console=ttyS0,115200")
    files = pxe.config_files(bundle)
    assert set(files) == {"boot.ipxe", "pxelinux.cfg/default", "grub.cfg"}
    ipxe = files["boot.ipxe"].splitlines()
    assert ipxe[0] == "#!ipxe"
    assert "echo Booting My live over the network (http://10.0.2.2:8000/squashfs.img)" in ipxe
    assert f"kernel vmlinuz initrd=initrd.img {bundle.kernel_cmdline}" in ipxe
    assert ipxe[-2:] == ["initrd initrd.img", "boot"]
    pxelinux = files["pxelinux.cfg/default"].splitlines()
    assert f"  APPEND {bundle.kernel_cmdline}" in pxelinux
    assert "  MENU LABEL My live" in pxelinux
    grub = files["grub.cfg"].splitlines()
    assert f"    linux ($root)/vmlinuz {bundle.kernel_cmdline}" in grub
    assert "    initrd ($root)/initrd.img" in grub, "by TFTP from the server bootx64.efi came from"
    assert "menuentry 'My live' {" in grub
    assert bundle.image_url == "http://10.0.2.2:8000/squashfs.img"


def test_grub_config_quotes_the_title() -> None:
    bundle = pxe.PxeBundle(url=URL, kernel_cmdline="root=live:x", title="Debian's live")
    assert "menuentry 'Debian'\\''s live' {" in pxe.grub_config(bundle).splitlines()


def test_find_bundle_in_a_target_dir_or_itself(tmp_path: Path) -> None:
    bundle = tmp_path / "x.x86_64-1.pxe"
    bundle.mkdir()
    with pytest.raises(LiveorchError, match="expected one network-boot bundle"):
        pxe.find_bundle(tmp_path)
    (bundle / "boot.ipxe").write_text("#!ipxe\n")
    assert pxe.find_bundle(tmp_path) == bundle
    assert pxe.find_bundle(bundle) == bundle


def test_server_serves_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "squashfs.img").write_bytes(b"hsqs" * 100)
    server = pxe.make_server(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/squashfs.img") as response:
            assert response.read() == b"hsqs" * 100
    finally:
        server.shutdown()
        server.server_close()


def test_headless_boot_gets_a_network_only_when_asked(tmp_path: Path) -> None:
    mode = BootMode(uefi=False, disk=False)
    plain = qemu_argv(tmp_path / "x.iso", mode)
    assert plain[plain.index("-nic") + 1] == "none"
    nic = pxe_nic(tmp_path)
    assert nic == f"user,model=virtio-net-pci,tftp={tmp_path},bootfile=boot.ipxe"
    argv = qemu_argv(tmp_path / "x.iso", mode, attach_iso=BootScript(attach_iso=False).attach_iso, nic=nic)
    assert argv[argv.index("-nic") + 1] == nic
    assert argv.count("-nic") == 1
    assert not any("x.iso" in a for a in argv), "no CD and no disk: the firmware boots from the network"


@pytest.mark.parametrize(("name", "profiles"), [("bookworm-live", ()), ("kiwi-features", ("Live",))])
def test_examples_bundle_reuses_their_root_and_squashfs(name: str, profiles: tuple[str, ...]) -> None:
    """The examples list the network packages themselves: with --pxe only the initrd's
    options change, so resolve, rootfs and squashfs keep their cache keys."""
    repo = "http://deb.debian.org/debian,apt-deb,debian,,true,,,main,bookworm,true"  # as the suite builds it
    description = parse_description(EXAMPLES / name, profiles=profiles,
                                    overrides=Overrides(set_repo=repo) if profiles else None)
    plain, bundle = make_plan(description), make_plan(description, pxe_url=URL)
    changed = {stage for stage in plain.options if plain.options[stage] != bundle.options[stage]}
    assert changed == {"initrd", "iso"}
    assert dataclasses.replace(bundle.options["iso"], netboot_loader=False) == plain.options["iso"], \
        "the iso stage is only asked for the UEFI loader besides"


# --- the ISO itself as the network image (KIWI's root=live:URL/NAME.iso) -------------------------


def test_the_iso_is_the_default_network_image(write_description) -> None:
    plan = make_plan(parse_description(write_description(type=OVERLAY_TYPE)), pxe_url=URL)
    assert plan.pxe is not None
    assert plan.pxe.image == plan.iso_name == "unit-live.x86_64-1.2.3.iso"
    assert plan.pxe.kernel_cmdline.split()[0] == f"root=live:{URL}{plan.iso_name}"
    assert plan.pxe.image_url == URL + plan.iso_name


def test_the_iso_serves_every_root_layout_but_verity(write_description) -> None:
    ext4 = OVERLAY_TYPE.replace('hybridpersistent="true"', 'hybridpersistent="true" filesystem="ext4"')
    plan = make_plan(parse_description(write_description(type=ext4)), pxe_url=URL)
    assert plan.pxe is not None and plan.pxe.image == plan.iso_name


def test_pxe_append_goes_last_and_changes_no_stage_option(write_description) -> None:
    description = parse_description(write_description(type=OVERLAY_TYPE))
    append = ("rd.kiwi.live.system=/dev/sda", "rd.live.overlay.persistent", "rd.kiwi.live.curl_options=--insecure")
    plain, deploying = make_plan(description, pxe_url=URL), make_plan(description, pxe_url=URL, pxe_append=append)
    assert plain.options == deploying.options
    assert deploying.pxe is not None and plain.pxe is not None
    assert deploying.pxe.kernel_cmdline == " ".join([plain.pxe.kernel_cmdline, *append])


@pytest.mark.parametrize("image", [NetworkImage.ISO, NetworkImage.SQUASHFS])
def test_deploying_to_a_disk_needs_the_overlay_flag_and_the_iso(write_description, image: NetworkImage) -> None:
    description = parse_description(write_description())  # flags="dmsquash"
    with pytest.raises(LiveorchError) as caught:
        make_plan(description, pxe_url=URL, pxe_image=image, pxe_append=("rd.kiwi.live.system=/dev/sda",))
    assert 'rd.kiwi.live.system=/dev/sda: deploying to a disk needs flags="overlay"' in str(caught.value)


@pytest.mark.parametrize("word", ["a;b", "x=$y", "q='1'", "\\n"])
def test_pxe_append_refuses_words_a_boot_config_would_read_differently(word: str) -> None:
    with pytest.raises(LiveorchError) as caught:
        pxe.check_append(f"rd.live.overlay.persistent {word}")
    assert f"--pxe-append {word!r}" in str(caught.value)


def test_ftp_urls_are_accepted() -> None:
    assert pxe.check_url("ftp://10.0.2.2/live") == "ftp://10.0.2.2/live/"


def test_the_bundle_copies_the_iso_stages_uefi_loader() -> None:
    """bootx64.efi is an output the iso stage declares (optional: only --pxe asks for it)."""
    assert ("iso", NETBOOT_LOADER, pxe.UEFI_LOADER) in pxe_bundle.BOOT_FILES
    (declared,) = [o for o in ISO_SPEC.outputs if o.name == NETBOOT_LOADER]
    assert declared.optional and declared.export is None, "not exported beside the ISO, only into the bundle"


def test_uefi_network_boot_uses_the_firmwares_pxe_client_first(tmp_path: Path) -> None:
    mode = BootMode(uefi=True, disk=False)
    devices = uefi_pxe_devices(tmp_path)
    assert devices == ("-netdev", f"user,id=pxe,tftp={tmp_path},bootfile=bootx64.efi",
                       "-device", "virtio-net-pci,netdev=pxe,romfile=,bootindex=0")
    argv = qemu_argv(tmp_path / "x.iso", mode, attach_iso=False) + list(devices)
    assert argv[argv.index("-nic") + 1] == "none", "no second NIC beside the PXE one"
    assert "-bios" in argv
    assert not any("x.iso" in a for a in argv)
    with pytest.raises(LiveorchError, match="comma"):
        uefi_pxe_devices(tmp_path / "a,b")


@pytest.mark.parametrize("parameter", ["ip=dhcp", "rd.neednet=1", "root=live:aoe:/dev/etherd/e0.1"])
def test_a_kernelcmdline_that_needs_the_network_gets_it_in_the_initrd(write_description, parameter: str) -> None:
    overlay = OVERLAY_TYPE.replace("console=ttyS0,115200 quiet", f"console=ttyS0,115200 {parameter} quiet")
    plan = make_plan(parse_description(write_description(type=overlay)))
    assert plan.pxe is None
    assert plan.options["initrd"].dracut_modules == ("liveorch-live", "url-lib", "network-legacy")
    assert {"dracut-network", "curl"} <= set(plan.options["resolve"].packages)
    assert f'kernelcmdline="... {parameter} ...": added curl so the initrd can bring up the network' in \
        " ".join(plan.notes)
    assert not plan.options["iso"].netboot_loader, "the UEFI network loader is for the bundle only"
