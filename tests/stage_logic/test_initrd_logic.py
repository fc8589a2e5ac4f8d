"""initrd pieces: liveorch's own dracut modules put into the root, dracut's command line,
and the stage run on a fake unpacked root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from liveorch.stages import initrd
from liveorch.stages.contracts.initrd import InitrdOptions
from liveorch.stages.initrd import dracut_argv, install_own_modules
from liveorch.stages.tools import StageError

REPO = Path(__file__).resolve().parents[2]
OWN_MODULE = REPO / "stages/dracut/90liveorch-live"
KVER = "6.1.0-18-amd64"


def test_install_own_modules_copies_liveorch_live_with_executable_scripts(tmp_path) -> None:
    root = tmp_path / "root"
    install_own_modules(root, ("liveorch-live",))

    target = root / "usr/lib/dracut/modules.d/90liveorch-live"
    expected = sorted(p.name for p in OWN_MODULE.iterdir())
    assert "module-setup.sh" in expected and "liveorch-live-root.service" in expected
    assert sorted(p.name for p in target.iterdir()) == expected
    for name in expected:
        assert (target / name).read_bytes() == (OWN_MODULE / name).read_bytes()
        mode = (target / name).stat().st_mode & 0o777
        assert mode == (0o755 if name.endswith(".sh") else 0o644), name


def test_install_own_modules_fixes_modes_whatever_the_source_had(tmp_path) -> None:
    source = tmp_path / "stage"
    (source / "dracut/90liveorch-live").mkdir(parents=True)
    (source / "dracut/90liveorch-live/module-setup.sh").write_text("#!/bin/bash\n")
    (source / "dracut/90liveorch-live/module-setup.sh").chmod(0o600)
    (source / "dracut/90liveorch-live/unit.service").write_text("[Unit]\n")
    (source / "dracut/90liveorch-live/unit.service").chmod(0o777)
    root = tmp_path / "root"

    install_own_modules(root, ("liveorch-live",), source=source)

    target = root / "usr/lib/dracut/modules.d/90liveorch-live"
    assert (target / "module-setup.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "unit.service").stat().st_mode & 0o777 == 0o644


def test_install_own_modules_leaves_the_images_own_modules_alone(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    install_own_modules(root, ("dmsquash-live",))
    assert list(root.iterdir()) == []

    install_own_modules(root, ("dmsquash-live", "liveorch-live", "network-legacy"))
    assert [p.name for p in (root / "usr/lib/dracut/modules.d").iterdir()] == ["90liveorch-live"]


def test_dracut_argv(tmp_path) -> None:
    options = InitrdOptions(("liveorch-live", "network-legacy"), ("erofs",), False)
    argv = dracut_argv(tmp_path, options, KVER)
    assert [str(a) for a in argv] == [
        "chroot", str(tmp_path),
        "dracut",
        "--reproducible",
        "--no-hostonly",
        "--no-hostonly-cmdline",
        "--force",
        "--no-compress",
        "--add", "liveorch-live network-legacy",
        "--add-drivers", "erofs",
        "--omit", "ifcfg",
        "--kver", KVER,
        "/tmp/initrd.cpio",
    ]


# --- the whole stage on a fake root -----------------------------------------------------------

def fake_unpack(kernels: tuple[str, ...] = (KVER,), dracut: bool = True):
    """What `tar --extract` of a root with dracut and these kernels (built to unpack a zstd
    initramfs) leaves."""

    def handler(call, _stdout) -> None:
        root = Path(call.argv[call.argv.index("--directory") + 1])
        for folder in ("dev", "tmp", "usr/bin", "var/lib/dpkg"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        if dracut:
            (root / "usr/bin/dracut").write_text("#!/bin/bash\n")
        (root / "usr/bin/zstd").write_bytes(b"\x7fELF")
        for kver in kernels:
            (root / "lib/modules" / kver).mkdir(parents=True)
            (root / "boot").mkdir(exist_ok=True)
            (root / "boot" / f"vmlinuz-{kver}").write_bytes(f"kernel {kver}\n".encode())
            (root / "boot" / f"config-{kver}").write_text("CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n")
        (root / "var/lib/dpkg/status").write_text(
            "Package: dracut\nVersion: 1\n\nPackage: dracut-core\nStatus: install ok installed\nVersion: 059-4\n\n")

    return handler


@pytest.fixture
def mknod(monkeypatch) -> list[str]:
    """Device nodes the stage asked for (none is made: tests need no CAP_MKNOD)."""
    made: list[str] = []
    monkeypatch.setattr("liveorch.stages.initrd.os.mknod", lambda path, *_: made.append(Path(path).name))
    return made


def test_execute_runs_the_images_dracut_on_the_unpacked_root(workspace, publish, make_request, commands, mknod,
                                                             monkeypatch) -> None:
    entry = publish("rootfs", {"root.tar": b"fake root tar\n"})
    commands.on("tar", fake_unpack())
    seen_modules: list[list[str]] = []

    def dracut(call, stdout) -> None:
        modules = Path(call.argv[1]) / "usr/lib/dracut/modules.d"
        seen_modules.append(sorted(p.name for p in modules.iterdir()) if modules.is_dir() else [])
        (Path(call.argv[1]) / "tmp/initrd.cpio").write_bytes(b"fake initramfs\n")

    commands.on("dracut", dracut)
    commands.on("zstd", lambda call, stdout: stdout.write(b"zstd of " + (call.stdin or b"")))
    monkeypatch.setenv("PATH", "/host/bin")
    monkeypatch.setenv("LIVEORCH_TEST_KEPT", "kept")
    options = InitrdOptions(dracut_modules=("liveorch-live",), drivers=(), secure_boot=False)

    outcome = initrd.execute(make_request("initrd", options, {"rootfs": "rootfs-key"}), workspace)

    root = workspace.tmp / "root"
    assert commands.argvs == [
        ["tar", "--extract", "--file", str(entry / "root.tar"), "--directory", str(root), "--numeric-owner",
         "--preserve-permissions", "--xattrs", "--xattrs-include=*"],
        [str(a) for a in dracut_argv(root, options, KVER)],
        ["zstd", "-9", "-T1", "--quiet", "--stdout"],
    ]
    assert commands.calls[2].stdin == b"fake initramfs\n"  # dracut's cpio, compressed by the stage
    dracut_env = commands.calls[1].env
    assert dracut_env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"  # the image's tools, not the container's
    assert dracut_env["LIVEORCH_TEST_KEPT"] == "kept"
    assert seen_modules == [["90liveorch-live"]]  # installed before dracut ran
    assert sorted(mknod) == ["null", "random", "urandom", "zero"]
    assert (workspace.out / "initrd.img").read_bytes() == b"zstd of fake initramfs\n"
    assert (workspace.out / "vmlinuz").read_bytes() == f"kernel {KVER}\n".encode()
    assert {(workspace.out / n).stat().st_mode & 0o777 for n in ("initrd.img", "vmlinuz")} == {0o644}
    assert outcome.facts == {"kernel": KVER}
    assert outcome.tools == {"tar": commands.version, "zstd": commands.version, "dracut (image)": "059-4"}
    assert not root.exists()


@pytest.mark.parametrize(("kernels", "message"), [
    ((), r"expected exactly one kernel in the image, found none"),
    ((KVER, "6.1.0-17-amd64"), r"expected exactly one kernel in the image, found \['6.1.0-17-amd64', '6.1.0-18"),
])
def test_execute_wants_exactly_one_kernel(workspace, publish, make_request, commands, mknod, kernels,
                                          message) -> None:
    publish("rootfs", {"root.tar": b"fake root tar\n"})
    commands.on("tar", fake_unpack(kernels))
    options = InitrdOptions(dracut_modules=("dmsquash-live",), drivers=(), secure_boot=False)
    with pytest.raises(StageError, match=message):
        initrd.execute(make_request("initrd", options, {"rootfs": "rootfs-key"}), workspace)
    assert commands.tool_calls("dracut") == []


def test_execute_without_dracut_in_the_image_is_a_stage_error(workspace, publish, make_request, commands,
                                                              mknod) -> None:
    publish("rootfs", {"root.tar": b"fake root tar\n"})
    commands.on("tar", fake_unpack(dracut=False))
    options = InitrdOptions(dracut_modules=("dmsquash-live",), drivers=(), secure_boot=False)
    with pytest.raises(StageError, match="the image has no dracut"):
        initrd.execute(make_request("initrd", options, {"rootfs": "rootfs-key"}), workspace)
    assert [commands.tool(a) for a in commands.argvs] == ["tar"]
    assert os.listdir(workspace.out) == []
