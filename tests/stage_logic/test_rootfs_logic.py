"""rootfs pieces: the flat repository of checked .debs, mmdebstrap's command line, the
configuration applied to a fake root, and the scrub of what varies between builds."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from fake_debs import BASE, HELLO, locked

from liveorch.stages.configure_root import configure_root, scrub_root, useradd_argv
from liveorch.stages.contracts.resolve import Lock, LockedPackage, LockedRepository
from liveorch.stages.rootfs import flat_repository, mmdebstrap_argv
from liveorch.stages.tools import StageError


def make_lock(*packages: LockedPackage) -> Lock:
    return Lock(format=1, architecture="amd64", source_date_epoch=1_700_000_000,
                repositories=(LockedRepository(alias="debian", url="http://deb.debian.org/debian", suite="bookworm",
                                               components=("main",), trusted=False, local=False),),
                requested=("hello",), packages=packages)


@pytest.fixture
def lock() -> Lock:
    # base-files has an epoch-less version, hello an epoch: its file name drops "1:".
    return make_lock(locked("base-files", "12.4+deb12u5", BASE), locked("hello", "1:2.10-3", HELLO))


@pytest.fixture
def debs(tmp_path: Path) -> Path:
    folder = tmp_path / "debs"
    folder.mkdir()
    (folder / "base-files_12.4+deb12u5_amd64.deb").write_bytes(BASE)
    (folder / "hello_2.10-3_amd64.deb").write_bytes(HELLO)
    return folder


# --- flat_repository ---------------------------------------------------------------------

def test_flat_repository_links_the_checked_debs_and_indexes_them(tmp_path, lock, debs, commands) -> None:
    repo = tmp_path / "repo"
    flat_repository(lock, debs, repo, "bookworm")

    assert sorted(p.name for p in repo.iterdir()) == [
        "Packages", "Release", "base-files_12.4+deb12u5_amd64.deb", "hello_2.10-3_amd64.deb"]
    assert (repo / "hello_2.10-3_amd64.deb").is_symlink()
    assert (repo / "hello_2.10-3_amd64.deb").resolve() == debs / "hello_2.10-3_amd64.deb"
    assert commands.argvs == [
        ["apt-ftparchive", "packages", "."],
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=bookworm",
         "-o", "APT::FTPArchive::Release::Codename=bookworm", "release", "."],
    ]
    assert [call.cwd for call in commands.calls] == [repo, repo]
    assert [call.stdout_name for call in commands.calls] == [str(repo / "Packages"), str(repo / "Release")]
    assert (repo / "Packages").read_text() == "# fake apt-ftparchive packages .\n"


def test_flat_repository_starts_from_an_empty_folder(tmp_path, lock, debs, commands) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "stray_1.0_amd64.deb").write_bytes(b"not locked")
    flat_repository(lock, debs, repo, "bookworm")
    assert not (repo / "stray_1.0_amd64.deb").exists()


def test_flat_repository_refuses_a_deb_that_does_not_match_the_lock(tmp_path, lock, debs, commands) -> None:
    (debs / "hello_2.10-3_amd64.deb").write_bytes(HELLO + b"tampered")
    repo = tmp_path / "repo"

    with pytest.raises(StageError) as error:
        flat_repository(lock, debs, repo, "bookworm")
    assert str(error.value) == (f"hello_2.10-3_amd64.deb does not match the lock's sha256 "
                                f"{hashlib.sha256(HELLO).hexdigest()}")
    assert commands.calls == []
    assert not (repo / "Packages").exists()
    assert not (repo / "hello_2.10-3_amd64.deb").exists()


def test_flat_repository_refuses_a_missing_deb(tmp_path, lock, debs, commands) -> None:
    (debs / "base-files_12.4+deb12u5_amd64.deb").unlink()
    with pytest.raises(StageError, match=r"^base-files_12\.4\+deb12u5_amd64\.deb does not match"):
        flat_repository(lock, debs, tmp_path / "repo", "bookworm")
    assert commands.calls == []


# --- mmdebstrap ----------------------------------------------------------------------------

def test_mmdebstrap_installs_exactly_the_locked_names_from_the_copy_repository(tmp_path, lock) -> None:
    root, repo = tmp_path / "root", tmp_path / "repo"
    assert mmdebstrap_argv(lock, "bookworm", root, repo) == [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        "--architectures=amd64",
        "--include=base-files,hello",
        "--aptopt=Acquire::Languages \"none\"",
        "bookworm",
        str(root),
        f"deb [trusted=yes] copy://{repo} ./",
    ]


# --- configure_root --------------------------------------------------------------------------

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
SHADOW = ("root:*:19000:0:99999:7:::\n"
          "daemon:*:19001:0:99999:7:::\n"
          "nobody:*::0:99999:7:::\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fake installed root: the files configure_root edits, as a package would leave them."""
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/shadow").write_text(SHADOW)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n10.0.0.1\tbuildhost\n")
    (root / "etc/hostname").write_text("buildhost\n")
    (root / "etc/resolv.conf").write_text("nameserver 10.0.0.53\n")
    (root / "etc/resolv.conf").chmod(0o755)  # as rootless Podman leaves it
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    return root


def add_to_shadow(root: Path):
    """What the image's useradd would do that configure_root relies on: a new shadow line."""

    def handler(call, _stdout) -> None:
        name = call.argv[-1]
        with (root / "etc/passwd").open("a") as passwd:
            passwd.write(f"{name}:x:1001:1001::/home/{name}:/bin/bash\n")
        with (root / "etc/shadow").open("a") as shadow:
            shadow.write(f"{name}:!:19999:0:99999:7:::\n")

    return handler


def test_configure_root_writes_the_host_files(root, rootfs_options, commands, epoch) -> None:
    configure_root(root, rootfs_options, epoch)

    assert (root / "etc/hostname").read_text() == "unit-live\n"
    assert (root / "etc/hosts").read_text() == (
        "127.0.0.1\tlocalhost\n127.0.1.1\tunit-live\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert (root / "etc/resolv.conf").read_text() == ""
    assert (root / "etc/resolv.conf").stat().st_mode & 0o777 == 0o644
    assert (root / "etc/apt/sources.list").read_text() == "deb http://deb.debian.org/debian bookworm main contrib\n"
    assert (root / "etc/default/locale").read_text() == "LANG=en_US.UTF-8\n"
    assert (root / "etc/vconsole.conf").read_text() == "KEYMAP=de\n"


def test_configure_root_keeps_no_sources_unless_asked(root, rootfs_options, commands, epoch) -> None:
    configure_root(root, dataclasses.replace(rootfs_options, image_sources=()), epoch)
    assert (root / "etc/apt/sources.list").read_text() == ""


def test_configure_root_sets_hashes_verbatim_and_pins_change_days(root, rootfs_options, commands, epoch) -> None:
    commands.on("useradd", add_to_shadow(root))
    configure_root(root, rootfs_options, epoch)

    day = str(epoch // 86400)
    assert day == "19675"
    assert (root / "etc/shadow").read_text() == (
        f"root:$6$saltsalt$rootHASH/with.dots:{day}:0:99999:7:::\n"
        f"daemon:*:{day}:0:99999:7:::\n"
        "nobody:*::0:99999:7:::\n"  # an empty last-change day stays empty
        f"alice:$y$j9T$alicesalt$aliceHASH:{day}:0:99999:7:::\n"
    )


def test_configure_root_adds_users_with_the_images_useradd(root, rootfs_options, commands, epoch) -> None:
    configure_root(root, rootfs_options, epoch)

    alice = rootfs_options.users[1]
    assert commands.argvs == [useradd_argv(root, alice)]
    assert commands.argvs == [[
        "chroot", str(root), "useradd", "--create-home",
        "--uid", "1001",
        "--home-dir", "/home/alice",
        "--shell", "/bin/bash",
        "--comment", "Alice Liddell",
        "--groups", "audio,video",
        "alice",
    ]]


def test_configure_root_skips_useradd_for_accounts_the_root_has(root, rootfs_options, commands, epoch) -> None:
    daemon = dataclasses.replace(rootfs_options.users[1], name="daemon", id=None)
    configure_root(root, dataclasses.replace(rootfs_options, users=(rootfs_options.users[0], daemon)), epoch)
    assert commands.calls == []
    assert (root / "etc/shadow").read_text().splitlines()[1] == "daemon:$y$j9T$alicesalt$aliceHASH:19675:0:99999:7:::"


def test_useradd_argv_leaves_out_what_the_user_does_not_set(tmp_path, rootfs_options) -> None:
    bare = dataclasses.replace(rootfs_options.users[1], id=None, home=None, shell=None, realname=None, groups=())
    assert useradd_argv(tmp_path, bare) == ["chroot", str(tmp_path), "useradd", "--create-home", "alice"]


def test_configure_root_enables_the_serial_getty(root, rootfs_options, commands, epoch) -> None:
    configure_root(root, rootfs_options, epoch)
    link = root / "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
    assert link.is_symlink()
    assert str(link.readlink()) == "/lib/systemd/system/serial-getty@.service"


def test_configure_root_without_serial_console_enables_no_getty(root, rootfs_options, commands, epoch) -> None:
    configure_root(root, dataclasses.replace(rootfs_options, serial_console=None), epoch)
    assert not (root / "etc/systemd/system/getty.target.wants").exists()


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC"])
def test_utc_needs_no_tzdata(root, rootfs_options, commands, epoch, zone) -> None:
    configure_root(root, dataclasses.replace(rootfs_options, timezone=zone), epoch)
    assert (root / "etc/timezone").read_text() == f"{zone}\n"
    assert not (root / "etc/localtime").exists() and not (root / "etc/localtime").is_symlink()


def test_a_known_timezone_links_localtime(root, rootfs_options, commands, epoch) -> None:
    zoneinfo = root / "usr/share/zoneinfo/Europe"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Berlin").write_bytes(b"TZif fake\n")
    configure_root(root, dataclasses.replace(rootfs_options, timezone="Europe/Berlin"), epoch)
    assert str((root / "etc/localtime").readlink()) == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/timezone").read_text() == "Europe/Berlin\n"


def test_an_unknown_timezone_without_tzdata_is_a_stage_error(root, rootfs_options, commands, epoch) -> None:
    with pytest.raises(StageError, match=r"unknown timezone 'Europe/Berlin' \(add tzdata to the packages\?\)"):
        configure_root(root, dataclasses.replace(rootfs_options, timezone="Europe/Berlin"), epoch)


# --- scrub_root ------------------------------------------------------------------------------

def test_scrub_root_removes_what_varies_between_builds(root, epoch) -> None:
    files = {
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
        "etc/ssh/ssh_host_ed25519_key": "private\n",
        "etc/ssh/ssh_host_ed25519_key.pub": "public\n",
        "etc/ssh/ssh_host_rsa_key": "private\n",
        "etc/ssh/sshd_config": "PermitRootLogin no\n",
        "var/log/apt/history.log": "Start-Date: today\n",
        "var/log/dpkg.log": "today\n",
        "var/cache/apt/pkgcache.bin": "cache\n",
        "var/cache/ldconfig/aux-cache": "cache\n",
        "var/lib/dpkg/status-old": "old\n",
        "etc/passwd-": "backup\n",
        "tmp/build.txt": "scratch\n",
        "var/lib/dpkg/status": "Package: base-files\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "var/log/journal").mkdir(parents=True)

    scrub_root(root, epoch)

    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "etc/machine-id").stat().st_mode & 0o777 == 0o644
    gone = ["var/lib/dbus/machine-id", "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
            "etc/ssh/ssh_host_rsa_key", "var/log/apt/history.log", "var/log/dpkg.log", "var/cache/apt/pkgcache.bin",
            "var/cache/ldconfig/aux-cache", "var/lib/dpkg/status-old", "etc/passwd-", "tmp/build.txt"]
    assert [name for name in gone if (root / name).exists()] == []
    assert (root / "etc/ssh/sshd_config").read_text() == "PermitRootLogin no\n"
    assert (root / "var/lib/dpkg/status").read_text() == "Package: base-files\n"
    assert (root / "etc/passwd").read_text() == PASSWD
    # the folders stay: packages expect them
    assert (root / "var/log/apt").is_dir() and (root / "var/log/journal").is_dir() and (root / "tmp").is_dir()
    assert not (root / "etc/systemd/system/liveorch-ssh-host-keys.service").exists()  # no sshd in this root


def test_an_image_with_sshd_makes_its_host_keys_at_boot(root, epoch) -> None:
    """The keys are dropped from the image (the same on every machine otherwise); a unit made
    for this makes them before ssh.service starts, which Debian's own packaging does not."""
    for name in ("usr/sbin/sshd", "etc/ssh/ssh_host_ed25519_key"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")

    scrub_root(root, epoch)

    unit = root / "etc/systemd/system/liveorch-ssh-host-keys.service"
    assert "ExecStart=/usr/bin/ssh-keygen -A" in unit.read_text() and "Before=ssh.service" in unit.read_text()
    assert unit.stat().st_mode & 0o777 == 0o644
    for target in ("multi-user.target.wants", "ssh.service.wants"):
        link = root / "etc/systemd/system" / target / unit.name
        assert link.is_symlink() and str(link.readlink()) == "/etc/systemd/system/liveorch-ssh-host-keys.service"
    assert not (root / "etc/ssh/ssh_host_ed25519_key").exists()


def test_the_verified_file_says_what_no_finding_means(tmp_path) -> None:
    """A root whose dpkg database lists nothing: the real dpkg --verify finds nothing, and the
    file still says the check ran and what an empty list means."""
    from liveorch.stages.package_info import VERIFIED_HEADER, write_verified

    root, out = tmp_path / "root", tmp_path / "out"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text("")
    out.mkdir()
    write_verified(root, out)
    assert (out / "verified").read_text() == VERIFIED_HEADER
    assert all(line.startswith("# ") for line in VERIFIED_HEADER.splitlines())
