"""checksum: the ISO's sha256, written and read back; with media check, its MD5 implanted first."""

from __future__ import annotations

from dataclasses import dataclass

from liveorch.stages.contract import UNPRIVILEGED_UID, Output, StageSpec
from liveorch.stages.contracts.iso import ISO_IMAGE

SHA256_FILE = f"{ISO_IMAGE}.sha256"


@dataclass(frozen=True)
class ChecksumOptions:
    """`iso_name`: the name the .sha256 file lists; `mediacheck`: implant the MD5 (the
    stage then writes the final ISO itself)."""

    iso_name: str
    mediacheck: bool


SPEC = StageSpec(
    name="checksum",
    summary="sha256 of the ISO in sha256sum format, verified by reading it back",
    options=ChecksumOptions,
    inputs=("iso",),
    outputs=(Output(SHA256_FILE, export="{iso}.sha256"), Output(ISO_IMAGE, optional=True, export="{iso}")),
    capabilities=(),
    user=UNPRIVILEGED_UID,
)
