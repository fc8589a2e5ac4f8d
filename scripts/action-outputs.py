"""The GitHub Action's outputs, read from what `liveorch run` wrote into the target directory.

The Action runs the build with `--progress plain` so its job log reads as timestamped lines
rather than JSON; the paths and the checksum then come from the build's report.json (the
newest one written since the build started, so an older build's files in a reused target
directory are never named), not from parsing the human summary, whose wording may change.

    python action-outputs.py TARGET_DIR START_EPOCH >> "$GITHUB_OUTPUT"

Prints iso, sha256, report, report-html, sbom, log (the build's own log, not a boot test's
serial transcript) and built: the stages that ran rather than hit the cache, which the
Action uses to save its actions/cache entry only when there is something new in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def newest(paths: list[Path], since: float) -> Path | None:
    fresh = [path for path in paths if path.stat().st_mtime >= since]
    return max(fresh, key=lambda path: path.stat().st_mtime, default=None)


def outputs(target: Path, since: float) -> dict[str, str]:
    report = newest(list(target.glob("*.report.json")), since)
    if report is None:
        raise SystemExit(f"no report.json written in {target} by this build")
    data = json.loads(report.read_text())
    base = report.name.removesuffix(".report.json")
    logs = [path for path in target.glob(f"{base}.*.log") if not path.name.endswith(".serial.log")]
    log = newest(logs, since)
    html = report.with_name(f"{base}.report.html")
    return {
        "iso": str(target / data["iso"]["name"]),
        "sha256": data["iso"]["sha256"],
        "report": str(report),
        "report-html": str(html) if html.exists() else "",
        "sbom": str(target / f"{base}.spdx.json"),
        "log": str(log) if log else "",
        "built": " ".join(stage["stage"] for stage in data["stages"] if not stage.get("cached")),
    }


if __name__ == "__main__":
    for name, value in outputs(Path(sys.argv[1]), float(sys.argv[2])).items():
        print(f"{name}={value}")
