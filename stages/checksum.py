"""checksum: the ISO's sha256 in sha256sum format, read back and verified before it counts."""

from __future__ import annotations

from pathlib import Path

from stages.contract import StageRequest
from stages.tools import Outcome, StageError, log, package_version, sha256_file


def execute(request: StageRequest, out: Path) -> Outcome:
    iso_name = request.options["iso_name"]
    iso = Path(request.inputs["iso"]) / iso_name
    if not iso.is_file():
        raise StageError(f"the iso stage left no {iso_name}")
    digest = sha256_file(iso)
    sums = out / f"{iso_name}.sha256"
    sums.write_text(f"{digest}  {iso_name}\n")
    recorded, name = sums.read_text().split()
    if recorded != digest or name != iso_name or sha256_file(iso) != digest:
        raise StageError("the written checksum does not verify")
    log(f"sha256 {digest}  {iso_name}")
    return Outcome(tools=package_version("coreutils"), facts={"sha256": digest})
