"""Applies the description's system settings to an installed root, and scrubs what varies.

Works on the tree directly wherever a file edit is enough (shadow, locale, time zone,
hostname, systemd links); only account creation and locale compilation run inside the root,
through chroot, so that the image's own useradd applies its own policy (home skeleton,
subordinate ids) and its own glibc compiles its locales (locale_data).
"""

from __future__ import annotations

from pathlib import Path

from liveorch.stages.contracts.rootfs import RootfsOptions, User
from liveorch.stages.locale_data import compile_locales
from liveorch.stages.tools import StageError, log, run

# Files that hold the time or the host of the build, never the image's content.
VOLATILE = (
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "var/cache/ldconfig/aux-cache",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/passwords.dat-old",
)
VOLATILE_TREES = ("var/log", "var/cache/apt", "var/lib/apt/lists", "tmp", "var/tmp", "run")
# The SSH host keys an image's openssh-server made at install time are dropped (they would be
# the same on every machine booting the ISO, and they differ between builds); this unit makes
# the missing ones at each boot before sshd starts, as Fedora's sshd-keygen does. Debian's
# ssh.service would otherwise fail its `sshd -t` check.
SSH_KEYGEN_UNIT = "liveorch-ssh-host-keys.service"
SSH_KEYGEN = """\
[Unit]
Description=SSH host keys for this boot of the live system (liveorch)
Before=ssh.service ssh.socket
ConditionPathExists=/usr/sbin/sshd

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service
"""


def _set_shadow(root: Path, passwords: dict[str, str], epoch: int) -> None:
    """Set hashes and pin every account's last-change day to the build's epoch."""
    shadow = root / "etc/shadow"
    lines = []
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if fields[0] in passwords:
            fields[1] = passwords[fields[0]]
        if len(fields) > 2 and fields[2]:
            fields[2] = str(epoch // 86400)
        lines.append(":".join(fields))
    shadow.write_text("\n".join(lines) + "\n")


def useradd_argv(root: Path, user: User) -> list[str]:
    """The image's own useradd applies the image's policy (skeleton, subordinate ids)."""
    argv: list[str] = ["chroot", str(root), "useradd", "--create-home"]
    if user.id is not None:
        argv += ["--uid", str(user.id)]
    if user.home:
        argv += ["--home-dir", user.home]
    if user.shell:
        argv += ["--shell", user.shell]
    if user.realname:
        argv += ["--comment", user.realname]
    if user.groups:
        argv += ["--groups", ",".join(user.groups)]
    return [*argv, user.name]


def _add_user(root: Path, user: User) -> None:
    passwd = (root / "etc/passwd").read_text()
    if any(line.split(":")[0] == user.name for line in passwd.splitlines()):
        return
    run(useradd_argv(root, user), what=f"useradd {user.name}")


def _enable_unit(root: Path, target: str, unit: str, template: str) -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        link.symlink_to(f"/lib/systemd/system/{template}")


def _write(root: Path, relative: str, text: str) -> None:
    """Write a configuration file as mode 0644 whatever was there before.

    An existing file keeps its mode on write, and some come from the build container
    rather than a package: mmdebstrap copies the engine's /etc/resolv.conf into the root,
    which is 0644 under Docker but 0755 under rootless Podman.
    """
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(0o644)


def system_lang(locale: str) -> str:
    """KIWI's rule: the first of <locale>'s list, UTF-8 unless it names a codeset (en_US is
    en_US.UTF-8); a modifier stays last (de_DE@euro is de_DE.UTF-8@euro, as localedef names it)."""
    first = locale.split(",")[0].strip()
    base, at, modifier = first.partition("@")
    return first if "." in base or first in ("C", "POSIX") else f"{base}.UTF-8{at}{modifier}"


def _locale_settings(root: Path, options: RootfsOptions) -> None:
    # What the plan found missing is compiled first: LANG then names a locale the image has.
    compile_locales(root, options.generate_locales)
    if options.locale:
        _write(root, "etc/default/locale", f"LANG={system_lang(options.locale)}\n")
    if options.keytable:
        _write(root, "etc/vconsole.conf", f"KEYMAP={options.keytable}\n")
    if options.timezone:
        zone = options.timezone
        localtime = root / "etc/localtime"
        if localtime.exists() or localtime.is_symlink():
            localtime.unlink()
        if (root / "usr/share/zoneinfo" / zone).exists():
            localtime.symlink_to(f"/usr/share/zoneinfo/{zone}")
        elif zone not in ("UTC", "Etc/UTC"):
            # Without /etc/localtime glibc and systemd use UTC, so UTC needs no tzdata.
            raise StageError(f"unknown timezone {zone!r} (add tzdata to the packages?)")
        _write(root, "etc/timezone", zone + "\n")


def configure_root(root: Path, options: RootfsOptions, epoch: int) -> None:
    hostname = options.hostname
    _write(root, "etc/hostname", hostname + "\n")
    _write(root, "etc/hosts",
           f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/resolv.conf", "")
    # KIWI's rule: only repositories marked imageinclude="true" stay configured in the image.
    _write(root, "etc/apt/sources.list", "".join(
        f"deb {s.url} {s.suite} {' '.join(s.components)}\n" for s in options.image_sources))
    _locale_settings(root, options)
    if options.serial_console:
        tty = options.serial_console
        _enable_unit(root, "getty.target", f"serial-getty@{tty}.service", "serial-getty@.service")
    for user in options.users:
        if user.name != "root":
            _add_user(root, user)
    # The hashes were made on the host: no plain password ever reaches a stage.
    _set_shadow(root, {u.name: u.password_hash for u in options.users}, epoch)
    log(f"configured: hostname {hostname}, {len(options.users)} user(s)")


def scrub_root(root: Path, epoch: int) -> None:
    """Remove what records the build's time or host rather than the image's content."""
    for relative in VOLATILE:
        path = root / relative
        if path.is_file() or path.is_symlink():
            path.unlink()
    # An empty machine-id makes systemd treat the first boot as such and generate one.
    _write(root, "etc/machine-id", "")
    for relative in VOLATILE_TREES:
        # Keep the directories (packages expect them); drop the files they collected.
        for path in sorted((root / relative).rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    if (root / "usr/sbin/sshd").exists():
        _ssh_host_keys_at_boot(root)


def _ssh_host_keys_at_boot(root: Path) -> None:
    _write(root, f"etc/systemd/system/{SSH_KEYGEN_UNIT}", SSH_KEYGEN)
    for target in ("multi-user.target", "ssh.service"):
        wants = root / "etc/systemd/system" / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / SSH_KEYGEN_UNIT
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{SSH_KEYGEN_UNIT}")
    log("openssh-server: host keys removed, made at boot by " + SSH_KEYGEN_UNIT)
