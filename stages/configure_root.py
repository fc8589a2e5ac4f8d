"""Applies the description's system settings to an installed root, and scrubs what varies.

Works on the tree directly wherever a file edit is enough (shadow, locale, time zone,
hostname, systemd links); only account creation runs inside the root, through chroot, so
that the image's own useradd applies its own policy (home skeleton, subordinate ids).
"""

from __future__ import annotations

import base64
import hashlib
import warnings
from pathlib import Path
from typing import Any

from liveorch.stages.tools import StageError, log, run

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

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


def _password_hash(user: dict[str, Any], epoch: int) -> str:
    """Plain passwords become SHA-512 crypt hashes with a salt derived from the inputs."""
    password = user.get("password")
    if password is None:
        return "*"
    if user.get("pwdformat", "encrypted") == "encrypted":
        return password
    seed = hashlib.sha256(f"{user['name']}\0{password}\0{epoch}".encode()).digest()
    salt = base64.b64encode(seed, altchars=b"./").decode()[:16]
    return crypt.crypt(password, "$6$" + salt)


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


def _add_user(root: Path, user: dict[str, Any]) -> None:
    passwd = (root / "etc/passwd").read_text()
    if any(line.split(":")[0] == user["name"] for line in passwd.splitlines()):
        return
    argv: list[str] = ["chroot", str(root), "useradd", "--create-home"]
    if user.get("id") is not None:
        argv += ["--uid", str(user["id"])]
    if user.get("home"):
        argv += ["--home-dir", user["home"]]
    if user.get("shell"):
        argv += ["--shell", user["shell"]]
    if user.get("realname"):
        argv += ["--comment", user["realname"]]
    if user.get("groups"):
        argv += ["--groups", ",".join(user["groups"])]
    run([*argv, user["name"]], what=f"useradd {user['name']}")


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


def configure_root(root: Path, options: dict[str, Any], lock: dict[str, Any], epoch: int) -> None:
    hostname = options.get("hostname") or "localhost"
    _write(root, "etc/hostname", hostname + "\n")
    _write(root, "etc/hosts",
           f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/resolv.conf", "")
    # KIWI's rule: only repositories marked imageinclude="true" stay configured in the image.
    _write(root, "etc/apt/sources.list", "".join(
        f"deb {r['url']} {r['suite']} {' '.join(r['components'])}\n" for r in options.get("image_repositories", [])))
    if options.get("locale"):
        locale = options["locale"].split(",")[0]
        lang = locale if "." in locale or locale in ("C", "POSIX") else f"{locale}.UTF-8"
        _write(root, "etc/default/locale", f"LANG={lang}\n")
    if options.get("keytable"):
        _write(root, "etc/vconsole.conf", f"KEYMAP={options['keytable']}\n")
    if options.get("timezone"):
        zone = options["timezone"]
        localtime = root / "etc/localtime"
        if localtime.exists() or localtime.is_symlink():
            localtime.unlink()
        if (root / "usr/share/zoneinfo" / zone).exists():
            localtime.symlink_to(f"/usr/share/zoneinfo/{zone}")
        elif zone not in ("UTC", "Etc/UTC"):
            # Without /etc/localtime glibc and systemd use UTC, so UTC needs no tzdata.
            raise StageError(f"unknown timezone {zone!r} (add tzdata to the packages?)")
        _write(root, "etc/timezone", zone + "\n")
    if options.get("serial_console"):
        tty = options["serial_console"]
        _enable_unit(root, "getty.target", f"serial-getty@{tty}.service", "serial-getty@.service")
    users = options.get("users", [])
    for user in users:
        if user["name"] != "root":
            _add_user(root, user)
    _set_shadow(root, {u["name"]: _password_hash(u, epoch) for u in users}, epoch)
    log(f"configured: hostname {hostname}, {len(users)} user(s)")


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
