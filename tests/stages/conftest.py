"""Runs single stage images on real inputs (the example build's artifacts) with testcontainers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from liveorch.orchestrator.build import BuildReport
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import DOCKER_DEFAULT_CAPS, ArtifactVolume
from liveorch.orchestrator.images import StageImage, ensure_stage_images, image_tag
from liveorch.orchestrator.plan import make_plan
from liveorch.stages.contract import (
    ARTIFACTS_MOUNT,
    NETWORKED_STAGES,
    REQUEST_FILE,
    STAGE_CAPABILITIES,
    StageRequest,
    StageResult,
    stage_dir,
)


@dataclass
class StageOutcome:
    exit_code: int
    logs: str
    result: StageResult | None
    key: str


@pytest.fixture(scope="session")
def volume(docker_client: docker.DockerClient, test_volume: str) -> Iterator[ArtifactVolume]:
    probe = ArtifactVolume(docker_client, test_volume, image_tag("checksum"), f"test{uuid.uuid4().hex[:6]}")
    yield probe
    probe.close()


@pytest.fixture(scope="session")
def stage_images(docker_client: docker.DockerClient) -> dict[str, StageImage]:
    """This checkout's stage images (by content tag: another checkout may share the engine)."""
    return ensure_stage_images(docker_client, print)


@pytest.fixture(scope="session")
def run_stage(volume: ArtifactVolume, example_build: BuildReport,  # type: ignore[no-untyped-def]
              stage_images: dict[str, StageImage]):
    """Run `stage` with `options` on the example's outputs of its input stages."""
    keys = {report.stage: report.key for report in example_build.stages}
    epoch = int(next(r for r in example_build.stages if r.stage == "resolve").result.facts["source_date_epoch"])

    def run(stage: str, options: dict[str, Any], inputs: tuple[str, ...] = ()) -> StageOutcome:
        key = f"test-{uuid.uuid4().hex}"
        work_name = f".work-{key}"
        request = StageRequest(stage=stage, key=key, source_date_epoch=epoch,
                               inputs={name: str(stage_dir(name, keys[name])) for name in inputs}, options=options)
        volume.write_tree(PurePosixPath(ARTIFACTS_MOUNT), {
            stage: None, f"{stage}/{work_name}": None,
            f"{stage}/{work_name}/{REQUEST_FILE}": request.to_json().encode(),
        })
        container = DockerContainer(
            stage_images[stage].tag,
            command=f"{ARTIFACTS_MOUNT}/{stage}/{work_name}",
            volumes=[(volume.name, ARTIFACTS_MOUNT, "rw")],
            network_mode="bridge" if stage in NETWORKED_STAGES else "none",
            cap_drop=[c for c in DOCKER_DEFAULT_CAPS if c not in STAGE_CAPABILITIES[stage]],
            security_opt=["no-new-privileges"],
        )
        container.start()
        try:
            code = container.get_wrapped_container().wait()["StatusCode"]
            out, err = container.get_logs()
            logs = out.decode(errors="replace") + err.decode(errors="replace")
        finally:
            container.stop()
        data = volume.read(stage_dir(stage, key) / "result.json")
        return StageOutcome(code, logs, StageResult.from_json(data.decode()) if data else None, key)

    return run


@pytest.fixture(scope="session")
def example_results(example_build: BuildReport) -> dict[str, StageResult]:
    return {report.stage: report.result for report in example_build.stages}


@pytest.fixture(scope="session")
def example_options(example_build: BuildReport) -> dict[str, dict[str, Any]]:
    example = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"
    return make_plan(parse_description(example)).options
