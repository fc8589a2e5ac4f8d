"""resolve: the exact package closure, downloaded and checked, and the lock that pins it."""

from __future__ import annotations

from dataclasses import dataclass

from liveorch.stages.contract import Output, StageSpec

LOCK_FORMAT = 1
DEBS = "debs/"
LOCK = "lock.json"


@dataclass(frozen=True)
class AptRepository:
    """A repository apt reads from; `trusted` skips signature checks (repository_gpgcheck="false",
    file://), `signing_keys` are base64 OpenPGP keys for this repository only."""

    url: str
    suite: str
    components: tuple[str, ...]
    alias: str
    trusted: bool
    signing_keys: tuple[str, ...]


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    filename: str
    repository: str


def deb_name(package: LockedPackage) -> str:
    """The name a package's file has in debs/: apt's, without the epoch's colon."""
    version = package.version.split(":", 1)[-1]
    return f"{package.name}_{version}_{package.architecture}.deb"


@dataclass(frozen=True)
class LockedRepository:
    """A repository as the lock records it, with the trust decision made for it."""

    alias: str
    url: str
    suite: str
    components: tuple[str, ...]
    trusted: bool
    local: bool


@dataclass(frozen=True)
class Lock:
    """The lock file's format (<name>.lock): what an image is built from, exactly."""

    format: int
    architecture: str
    source_date_epoch: int
    repositories: tuple[LockedRepository, ...]
    requested: tuple[str, ...]
    packages: tuple[LockedPackage, ...]


@dataclass(frozen=True)
class ResolveOptions:
    """`lock`: install exactly this; `offline`: no network, the package pool only."""

    architecture: str
    repositories: tuple[AptRepository, ...]
    packages: tuple[str, ...]
    lock: Lock | None
    offline: bool


SPEC = StageSpec(
    name="resolve",
    summary="the package closure with apt, every .deb checked against the repository index",
    options=ResolveOptions,
    inputs=(),
    outputs=(Output(DEBS), Output(LOCK, export="{image}.lock")),
    # apt's sandbox user wants to drop to _apt: chown and friends on its own files.
    capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER"),
    user=0,
    network=True,
    pooled=DEBS,
)
