"""checksum: the ISO's sha256 in sha256sum format, read back and verified before it counts.

With media check on, the ISO's MD5 is first implanted into its primary volume descriptor
(Debian's isomd5sum format, what dracut's rd.live.check verifies at boot), so the stage
writes the final ISO itself; the implant is a pure function of the ISO's bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from liveorch.stages.contract import Outcome, StageRequest, Workspace
from liveorch.stages.contracts.checksum import SHA256_FILE, ChecksumOptions
from liveorch.stages.contracts.iso import ISO_IMAGE
from liveorch.stages.tools import StageError, log, package_version, run, sha256_file


def _implant(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    run(["implantisomd5", "--force", target], what="implantisomd5")
    check = subprocess.run(["checkisomd5", "--verbose", str(target)], capture_output=True, text=True)
    log(check.stdout.strip().splitlines()[-1] if check.stdout.strip() else "checkisomd5: no output")
    if check.returncode != 0:  # 0 = PASS, 1 = FAIL, 2 = aborted or no checksum
        raise StageError(f"checkisomd5 does not accept the implanted ISO (exit {check.returncode})")


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: ChecksumOptions = request.options
    iso = workspace.input(request, "iso") / ISO_IMAGE
    if not iso.is_file():
        raise StageError(f"the iso stage left no {ISO_IMAGE}")
    if options.mediacheck:
        _implant(iso, workspace.out / ISO_IMAGE)
        iso = workspace.out / ISO_IMAGE
    digest = sha256_file(iso)
    sums = workspace.out / SHA256_FILE
    sums.write_text(f"{digest}  {options.iso_name}\n")
    recorded, name = sums.read_text().split()
    if recorded != digest or name != options.iso_name or sha256_file(iso) != digest:
        raise StageError("the written checksum does not verify")
    log(f"sha256 {digest}  {options.iso_name}")
    return Outcome(tools=package_version("coreutils", "isomd5sum"), facts={"sha256": digest})
