"""A KIWI description using profiles, two <users> blocks, a plain password, a root/ overlay,
an archive, config.sh/images.sh with /.kconfig and /.profile, a delete package and a time
zone, built with --set-repo, booted, and checked from inside the running system."""

from __future__ import annotations

import pytest

from liveorch.orchestrator.boot import BootMode, BootResult, boot_and_login
from liveorch.orchestrator.report import BuildReport

pytestmark = pytest.mark.slow
# The plain password was hashed on the host (SHA-512-crypt with many rounds): the image's own
# crypt(3), through perl (Essential), must accept "penguin" for it.
CHECKS = ("id tux; h=$(grep ^tux: /etc/shadow | cut -d: -f2); echo \"$h\" | cut -c1-3; echo \"$h\" | cut -d'$' -f3; "
          "test \"$(perl -e 'print crypt($ARGV[0], $ARGV[1])' penguin \"$h\")\" = \"$h\" && echo TUX_PASSWORD=ok; "
          "cat /etc/motd /etc/liveorch/profile-seen /etc/liveorch/images-seen /opt/extra/README /run/liveorch-hello; "
          "dpkg -s less >/dev/null 2>&1 && echo LESS=present || echo LESS=absent; "
          "echo TZ=$(date +%Z); systemctl get-default; cat /etc/vconsole.conf; grep -c ^deb /etc/apt/sources.list; "
          "ls /.kconfig /.profile /image 2>&1 | grep -c 'No such'; "
          # sshd: host keys made at this boot, and a connection to port 22 answered by sshd itself.
          "for i in $(seq 60); do systemctl is-active -q ssh && break; sleep 1; done; "
          "echo SSH=$(systemctl is-active ssh); ls /etc/ssh/ssh_host_ed25519_key.pub; "
          "timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/22; head -c 8 <&3'; echo; "
          # <locale>en_US</locale> compiled by the rootfs stage, <keytable>de</keytable> loaded at boot.
          "locale -a; echo CHARMAP=$(LANG=en_US.UTF-8 locale charmap 2>/dev/null); cat /etc/default/locale; "
          "echo LOCALE_GEN=$(grep -xc 'en_US.UTF-8 UTF-8' /etc/locale.gen); "
          "echo VCONSOLE=$(systemctl is-failed systemd-vconsole-setup); ls /usr/share/keymaps/i386/qwertz/de.kmap.gz")


@pytest.fixture(scope="module")
def booted(features_build: BuildReport, tmp_path_factory: pytest.TempPathFactory) -> BootResult:
    log = tmp_path_factory.mktemp("serial") / "kiwi-features.log"
    return boot_and_login(features_build.iso, BootMode(uefi=True, disk=True), "linux", command=CHECKS, log=log)


def test_the_plain_password_never_reaches_logs_or_outputs(features_build: BuildReport) -> None:
    target = features_build.iso.parent
    for path in target.iterdir():
        if path.suffix != ".iso":
            assert b"penguin" not in path.read_bytes(), path


def test_users_from_both_blocks(booted: BootResult) -> None:
    out = booted.command_output
    assert "uid=2000(tux)" in out and "(users)" in out and "(audio)" in out
    assert "$6$" in out and "rounds=656000" in out and "TUX_PASSWORD=ok" in out


def test_overlay_archive_and_hooks(booted: BootResult) -> None:
    out = booted.command_output
    assert "Welcome to the liveorch KIWI features image" in out
    assert "kiwi-features 2.1.0 Live iso" in out
    assert "images.sh ran for kiwi-features" in out
    assert "from the archive" in out
    assert "liveorch-hello: the overlay's service ran" in out
    assert "multi-user.target" in out
    assert "\n3" in out.replace("\r", ""), "/.kconfig, /.profile and /image must be gone"


def test_delete_package_timezone_keytable_and_image_repositories(booted: BootResult) -> None:
    out = booted.command_output.replace("\r", "")
    assert "LESS=absent" in out
    assert "TZ=CET" in out or "TZ=CEST" in out
    assert "KEYMAP=de" in out
    assert "\n1\n" in out, "only the imageinclude repository stays in sources.list"


def test_sshd_makes_its_host_keys_and_accepts_connections(booted: BootResult) -> None:
    """openssh-server as a user installs it: the image carries no host keys, and the unit the
    rootfs stage adds makes them at boot, so ssh.service starts and answers on port 22."""
    out = booted.command_output.replace("\r", "")
    assert "SSH=active" in out
    assert "/etc/ssh/ssh_host_ed25519_key.pub" in out
    assert "SSH-2.0-" in out


def test_locale_compiled_and_keymap_loaded(booted: BootResult) -> None:
    """The plan added locales (compiled by the rootfs stage) for en_US and kbd and console-data for
    the de keymap, which systemd-vconsole-setup loads with loadkeys without failing."""
    out = booted.command_output.replace("\r", "")
    assert "\nen_US.utf8\n" in out
    assert "CHARMAP=UTF-8" in out
    assert "LANG=en_US.UTF-8" in out
    assert "LOCALE_GEN=1" in out
    assert "VCONSOLE=" in out and "VCONSOLE=failed" not in out
    assert "/usr/share/keymaps/i386/qwertz/de.kmap.gz" in out and "No such file" not in out.split("VCONSOLE=")[1]
