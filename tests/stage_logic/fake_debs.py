"""Tiny stand-ins for .deb files and their lock entries, shared by the resolve and rootfs tests."""

from __future__ import annotations

import hashlib

from liveorch.stages.contracts.resolve import LockedPackage

HELLO = b"!<arch>\nfake hello deb\n"
BASE = b"!<arch>\nfake base-files deb\n"


def locked(name: str, version: str, data: bytes) -> LockedPackage:
    return LockedPackage(name=name, version=version, architecture="amd64", sha256=hashlib.sha256(data).hexdigest(),
                         size=len(data), filename=f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
                         repository="debian")
