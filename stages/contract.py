"""The request/result contract between the orchestrator and the stage containers.

This is the only module both sides import. A stage is a pure function of its request and
its input artifacts; everything a stage may depend on must therefore be in the request,
and everything a later step may rely on must be in the result record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

STAGES: tuple[str, ...] = ("resolve", "rootfs", "squashfs", "initrd", "iso", "checksum")

# Where the artifact volume is mounted inside every stage container.
ARTIFACTS_MOUNT = "/artifacts"

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"

# Which earlier stages' outputs each stage reads. The orchestrator derives cache keys
# and the data flow from this table alone.
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "resolve": (),
    "rootfs": ("resolve",),
    "squashfs": ("rootfs",),
    "initrd": ("rootfs",),
    "iso": ("squashfs", "initrd"),
    "checksum": ("iso",),
}

# Stages that need the network: everything else runs with networking disabled.
NETWORKED_STAGES: frozenset[str] = frozenset({"resolve"})

# The capabilities each stage keeps; every other one of the engine's defaults is dropped.
# Stages that run as an unprivileged user need none at all.
STAGE_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "resolve": ("CHOWN", "DAC_OVERRIDE", "FOWNER"),
    # mmdebstrap in root mode: dpkg sets owners and modes, maintainer scripts switch users, chroot.
    "rootfs": ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SYS_CHROOT", "MKNOD",
               "SETFCAP", "KILL"),
    "squashfs": (),
    # unpacking the root with its owners, then chroot to run the image's dracut.
    "initrd": ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SYS_CHROOT", "MKNOD", "SETFCAP"),
    "iso": (),
    "checksum": (),
}


def stage_dir(stage: str, key: str) -> PurePosixPath:
    """Final place of a stage's outputs in the artifact volume: content-addressed by key."""
    return PurePosixPath(ARTIFACTS_MOUNT) / stage / key


def canonical_json(value: Any) -> str:
    """JSON with a single spelling per value, so that hashing it is meaningful."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StageRequest:
    """What a stage is asked to do.

    `inputs` maps an earlier stage's name to the directory holding its outputs;
    `options` are the stage's own settings (validated by the stage on entry).
    """

    stage: str
    key: str
    source_date_epoch: int
    inputs: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StageRequest:
        data = json.loads(text)
        unknown = set(data) - {"stage", "key", "source_date_epoch", "inputs", "options"}
        if unknown:
            raise ValueError(f"unknown request fields: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Artifact:
    size: int
    sha256: str


@dataclass
class StageResult:
    """The record a stage leaves beside its outputs.

    `facts` carries small values later stages' requests need (e.g. the build's
    SOURCE_DATE_EPOCH chosen by resolve); `outputs` lists every output file's checksum.
    """

    stage: str
    key: str
    outputs: dict[str, Artifact]
    tools: dict[str, str]
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StageResult:
        data = json.loads(text)
        data["outputs"] = {name: Artifact(**a) for name, a in data["outputs"].items()}
        return cls(**data)

    def digest(self) -> str:
        """Identity of the outputs, independent of timing: feeds later stages' keys."""
        return sha256_text(canonical_json({n: asdict(a) for n, a in sorted(self.outputs.items())}))
