"""checksum: the ISO's sha256 in sha256sum format, read back and verified before it counts.

With media check on, the ISO's MD5 is first implanted into its primary volume descriptor
(Debian's isomd5sum format, what dracut's rd.live.check verifies at boot), so the stage
writes the final ISO itself; the implant is a pure function of the ISO's bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from liveorch.stages.contract import StageRequest
from liveorch.stages.tools import Outcome, StageError, log, package_version, run, sha256_file


def _implant(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    run(["implantisomd5", "--force", target], what="implantisomd5")
    check = subprocess.run(["checkisomd5", "--verbose", str(target)], capture_output=True, text=True)
    log(check.stdout.strip().splitlines()[-1] if check.stdout.strip() else "checkisomd5: no output")
    if check.returncode != 0:  # 0 = PASS, 1 = FAIL, 2 = aborted or no checksum
        raise StageError(f"checkisomd5 does not accept the implanted ISO (exit {check.returncode})")


def execute(request: StageRequest, out: Path) -> Outcome:
    iso_name = request.options["iso_name"]
    iso = Path(request.inputs["iso"]) / iso_name
    if not iso.is_file():
        raise StageError(f"the iso stage left no {iso_name}")
    if request.options.get("mediacheck"):
        _implant(iso, out / iso_name)
        iso = out / iso_name
    digest = sha256_file(iso)
    sums = out / f"{iso_name}.sha256"
    sums.write_text(f"{digest}  {iso_name}\n")
    recorded, name = sums.read_text().split()
    if recorded != digest or name != iso_name or sha256_file(iso) != digest:
        raise StageError("the written checksum does not verify")
    log(f"sha256 {digest}  {iso_name}")
    return Outcome(tools=package_version("coreutils", "isomd5sum"), facts={"sha256": digest})
