"""What a description needs for its image to work, checked before anything runs.

Each check reads the description's own package list (what the resolve stage will be asked
for, not what dependencies may add), so a check can only tell that nothing asks for a piece.
Hence the two severities: no kernel is an error, because the initrd and ISO stages take
/boot/vmlinuz-* from the image and no Debian package a live image asks for pulls a kernel in
by dependency; everything else is a note, because the build succeeds and the gap shows only
when the image runs (and a dependency, config.sh or the root/ overlay may fill it).

The time zone, locale and keytable are not checked here: the plan adds what they need
(tzdata; locales; kbd and console-data), as it adds dracut, because a KIWI description names
them and expects them to work (system_settings says why each package).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.findings import Finding, Severity

KERNEL = re.compile(r"linux-(image|signed-image|generic|virtual|lowlatency|kvm)(-.+)?")
# What makes /sbin/init: systemd-sysv and init (which depends on one of these), or another init system.
INIT_PACKAGES = frozenset({"init", "systemd-sysv", "sysvinit-core", "runit-init", "openrc", "finit-sysv"})


class Need(enum.StrEnum):
    """The pieces of a working live image a description can leave out."""

    KERNEL = "kernel"
    INIT = "init"
    LOGIN = "login"


def _kernel(description: Description) -> Finding | None:
    if any(KERNEL.fullmatch(name) for name in description.packages):
        return None
    return Finding(description.origins.get("packages", str(description.path)),
                   "no kernel: nothing asks for a linux-image-* package, and the initrd stage needs the image's "
                   "/boot/vmlinuz-*", '<package name="linux-image-amd64"/>', Severity.ERROR)


def _init(description: Description) -> Finding | None:
    if INIT_PACKAGES & set(description.packages):
        return None
    return Finding(description.origins.get("packages", str(description.path)),
                   "no init: no package asks for /sbin/init, so the live system stops in the initrd unless a "
                   "dependency brings one", '<package name="systemd-sysv"/>')


def _login(description: Description) -> Finding | None:
    if any(user.password is not None for user in description.users):
        return None
    what = "no <users>" if not description.users else "no user has a password"
    return Finding(description.origins.get("users", str(description.path)),
                   f"{what}: the image builds and boots, but nobody can log in on its consoles",
                   '<users><user name="root" password="..." pwdformat="plain" home="/root"/></users>')


CHECKS: dict[Need, Callable[[Description], Finding | None]] = {
    Need.KERNEL: _kernel, Need.INIT: _init, Need.LOGIN: _login,
}


def check_image(description: Description) -> list[Finding]:
    """One Finding per missing piece, errors first."""
    found = [finding for check in CHECKS.values() if (finding := check(description)) is not None]
    return sorted(found, key=lambda finding: finding.severity is not Severity.ERROR)
