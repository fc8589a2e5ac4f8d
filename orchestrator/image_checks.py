"""What a description needs for its image to work, checked before anything runs.

Each check reads the description's own package list (what the resolve stage will be asked
for, not what dependencies may add), so a check can only tell that nothing asks for a piece.
Hence the two severities: no kernel is an error, because the initrd and ISO stages take
/boot/vmlinuz-* from the image and no Debian package a live image asks for pulls a kernel in
by dependency; everything else is a note, because the build succeeds and the gap shows only
when the image runs (and a dependency, config.sh or the root/ overlay may fill it).

The time zone, locale and keytable need packages the plan adds (tzdata; locales; kbd and
console-data), as it adds dracut, because a KIWI description names them and expects them to
work (system_settings says why each package). A time zone's name is checked here, against the
host's zone list when it has one: the rootfs stage would stop on an unknown one minutes later.
"""

from __future__ import annotations

import difflib
import enum
import re
import zoneinfo
from collections.abc import Callable
from functools import cache

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.findings import Finding, Severity
from liveorch.orchestrator.system_settings import ZONES_WITHOUT_TZDATA, Setting

KERNEL = re.compile(r"linux-(image|signed-image|generic|virtual|lowlatency|kvm)(-.+)?")
# What makes /sbin/init: systemd-sysv and init (which depends on one of these), or another init system.
INIT_PACKAGES = frozenset({"init", "systemd-sysv", "sysvinit-core", "runit-init", "openrc", "finit-sysv"})


class Need(enum.StrEnum):
    """The pieces of a working live image a description can leave out."""

    KERNEL = "kernel"
    INIT = "init"
    LOGIN = "login"
    TIMEZONE = "timezone"


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


@cache
def _known_zones() -> frozenset[str]:
    """The host's IANA zone names (its tzdata, as the image's); empty where it has none."""
    return frozenset(zoneinfo.available_timezones())


def _timezone(description: Description) -> Finding | None:
    zone = (description.timezone or "").strip()
    if not zone or zone in ZONES_WITHOUT_TZDATA or not _known_zones() or zone in _known_zones():
        return None
    close = difflib.get_close_matches(zone, sorted(_known_zones()), n=1, cutoff=0.6)
    fix = f"did you mean <timezone>{close[0]}</timezone>?" if close else "a name from /usr/share/zoneinfo, e.g. " \
        "Europe/Berlin"
    return Finding(description.origins.get(Setting.TIMEZONE, str(description.path)),
                   f"unknown time zone {zone!r}: the rootfs stage could not link /etc/localtime to it", fix,
                   Severity.ERROR)


CHECKS: dict[Need, Callable[[Description], Finding | None]] = {
    Need.KERNEL: _kernel, Need.INIT: _init, Need.LOGIN: _login, Need.TIMEZONE: _timezone,
}


def check_image(description: Description) -> list[Finding]:
    """One Finding per missing piece, errors first."""
    found = [finding for check in CHECKS.values() if (finding := check(description)) is not None]
    return sorted(found, key=lambda finding: finding.severity is not Severity.ERROR)
