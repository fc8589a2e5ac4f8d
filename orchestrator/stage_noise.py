"""Lines a stage prints that are expected and harmless in liveorch's unprivileged stages:
kept in the build log, kept out of the live view, where they would read as problems.

Each comes from running a distribution's tools without mounts, /proc or a terminal:
mmdebstrap's notes about the mounts it skips, dracut's survey of modules the image has no
tools for, debconf without a frontend.
"""

from __future__ import annotations

import re

NOISE = re.compile("|".join((
    # rootfs: mmdebstrap --mode=root in a container without CAP_SYS_ADMIN
    r"^W: skipping (bind-)?mount",
    r"^W: cannot (mount|execute mount)",
    r"^W: gpg --version failed",
    r"^unshare: unshare failed: Operation not permitted",
    # debconf with no terminal
    r"^debconf: (delaying package configuration|unable to initialize frontend|falling back to frontend)",
    # initrd: dracut in a chroot without /proc, /sys and strip
    r"dracut module '[^']+' will not be installed",
    r"Could not find any command of",
    r"Could not find 'strip'",
    r"findmnt: can't read /proc/",
    r"/dev/fd/\d+: No such file or directory",
    r"/sys/module/firmware_class/parameters/path",
    r"memstrack is not available|please install memstrack",
    r"Skipping udev rule:",
)))


def is_noise(line: str) -> bool:
    return NOISE.search(line.strip()) is not None
