"""verify-repro: build twice, independently, and compare every stage's outputs.

The second build runs in a fresh artifact volume with no cache, from the first build's
lock (so both install the same packages), in another target directory. The first stage
whose outputs differ is the one that is not a pure function of its inputs.
"""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from liveorch.orchestrator.build import Build, BuildOptions
from liveorch.orchestrator.engine import connect, remove_volume
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.progress import Progress
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.stages.contract import Artifact


@dataclass
class ReproReport:
    identical: bool
    first_difference: str | None
    differing_files: list[str]
    sha256: tuple[str, str]


def _iso_sha(reports: dict[str, StageReport]) -> str:
    return str(reports["checksum"].record.facts["sha256"])


def first_difference(first: dict[str, dict[str, Artifact]], second: dict[str, dict[str, Artifact]]
                     ) -> tuple[str | None, list[str]]:
    """The first stage, in running order, whose outputs differ, and the files that do."""
    for stage in stage_names():
        a, b = first.get(stage, {}), second.get(stage, {})
        if a != b:
            return stage, sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
    return None, []


def compare(first: dict[str, StageReport], second: dict[str, StageReport]) -> tuple[str | None, list[str]]:
    return first_difference({s: r.record.outputs for s, r in first.items()},
                            {s: r.record.outputs for s, r in second.items()})


def verify_reproducible(config: Path, options: BuildOptions, progress: Progress) -> ReproReport:
    say = progress.note
    with tempfile.TemporaryDirectory(prefix="liveorch-repro-") as tmp:
        say("first build (the usual cache)")
        with Build(config, options, progress) as build:
            first = build.run_stages()
            lock_file = Path(tmp) / "first.lock"
            build.export_lock(first, lock_file)
        scratch = f"liveorch-repro-{uuid.uuid4().hex[:8]}"
        second_options = dataclasses.replace(options, volume=scratch, no_cache=True, lock=lock_file,
                                             update_lock=False, target_dir=Path(tmp) / "second")
        say(f"second build (no cache, fresh volume {scratch})")
        try:
            with Build(config, second_options, progress) as build:
                second = build.run_stages()
        finally:
            client = connect(options.engine_host)
            remove_volume(client, scratch)
            client.close()
    stage, files = compare(first, second)
    return ReproReport(stage is None, stage, files, (_iso_sha(first), _iso_sha(second)))
