"""The stage cache and bit-identical output, on the real example build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.report import BuildReport

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"


def _states(report: BuildReport) -> dict[str, bool]:
    return {r.stage: r.cached for r in report.stages}


def _rebuilt(states: dict[str, bool]) -> set[str]:
    """The stages that ran (every other one was a verified cache hit)."""
    return {stage for stage, cached in states.items() if not cached}


def test_unchanged_rebuild_reuses_every_stage(example_build: BuildReport, test_volume: str, tmp_path: Path) -> None:
    again = run_build(EXAMPLE, BuildOptions(target_dir=tmp_path, volume=test_volume), print)
    assert all(_states(again).values()), _states(again)
    assert again.sha256 == example_build.sha256
    assert (tmp_path / example_build.iso.name).stat().st_size == example_build.size


def test_timeout_change_reruns_only_iso_and_checksum(example_build: BuildReport, test_volume: str,
                                                     tmp_path: Path) -> None:
    tree = etree.parse(str(EXAMPLE))
    tree.find("preferences/type/bootloader").set("timeout", "9")
    changed = tmp_path / "config.xml"
    tree.write(str(changed))
    report = run_build(changed, BuildOptions(target_dir=tmp_path / "out", volume=test_volume), print)
    assert _rebuilt(_states(report)) == {"iso", "checksum"}
    assert report.sha256 != example_build.sha256


def test_an_independent_build_is_bit_identical(example_build: BuildReport, test_volume: str, tmp_path: Path) -> None:
    """verify-repro: a second build in a fresh volume with no cache, another TZ and umask."""
    env = {**os.environ, "TZ": "Pacific/Kiritimati"}
    completed = subprocess.run(
        ["bash", "-c", 'umask 077 && exec "$@"', "_", sys.executable, "-m", "liveorch", "verify-repro",
         str(EXAMPLE), "--volume", test_volume, "--target-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "reproducible: every stage's outputs are identical" in completed.stdout
    assert f"second {example_build.sha256}" in completed.stdout


def _checkout(tmp_path: Path) -> Path:
    """A copy of the code (liveorch, orchestrator, stages, Dockerfiles) that `python -m liveorch`
    run inside it imports, as a user's edited checkout would."""
    checkout = tmp_path / "checkout"
    for name in ("liveorch", "orchestrator", "stages", "Dockerfiles"):
        shutil.copytree(REPO / name, checkout / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def _run_in(checkout: Path, target: Path, volume: str) -> dict[str, bool]:
    completed = subprocess.run([sys.executable, "-m", "liveorch", "run", str(EXAMPLE), "--target-dir", str(target),
                                "--volume", volume, "--json"], cwd=checkout, capture_output=True, text=True,
                               timeout=1800)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    return {stage: state["cached"] for stage, state in summary["stages"].items()}


def test_code_edits_rerun_only_the_stages_that_run_that_code(example_build: BuildReport, test_volume: str,
                                                             tmp_path: Path) -> None:
    """Editing the GRUB menu code reruns iso (and checksum: the ISO's bytes change); editing the
    squashfs stage reruns squashfs, and iso and checksum after it because its bytes change."""
    checkout = _checkout(tmp_path)
    grub = checkout / "stages" / "grub_config.py"
    grub.write_text(grub.read_text().replace('"set default=0\\n"\n', '"# edited\\nset default=0\\n"\n', 1))
    assert "# edited" in grub.read_text()
    assert _rebuilt(_run_in(checkout, tmp_path / "grub", test_volume)) == {"iso", "checksum"}
    squashfs = checkout / "stages" / "squashfs.py"
    squashfs.write_text(squashfs.read_text().replace('"--quiet",', '"--block-size", "262144",\n        "--quiet",', 1))
    assert "262144" in squashfs.read_text()
    assert _rebuilt(_run_in(checkout, tmp_path / "squashfs", test_volume)) == {"squashfs", "iso", "checksum"}
