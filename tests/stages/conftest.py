"""Runs single stage images on real inputs (the example build's entries in the test store)
with testcontainers, the way the orchestrator runs them: the store read-only, a scratch
volume of their own, their contract's user, capabilities and network; the store keeper
then publishes what they wrote under a test key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import DOCKER_DEFAULT_CAPS, LABEL
from liveorch.orchestrator.errors import StageFailed
from liveorch.orchestrator.images import STORE_IMAGE, StageImage, ensure_images
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.report import BuildReport
from liveorch.orchestrator.stage_specs import spec_of
from liveorch.orchestrator.store import Store
from liveorch.orchestrator.volume_io import Entry, write_tree
from liveorch.stages.contract import CLAIMS_FILE, REQUEST_FILE, STORE_MOUNT, WORK_MOUNT, Record, StageRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"


@dataclass
class StageOutcome:
    exit_code: int
    logs: str
    record: Record | None
    key: str


@pytest.fixture(scope="session")
def stage_images(docker_client: docker.DockerClient) -> dict[str, StageImage]:
    """This checkout's images (by content tag: another checkout may share the engine)."""
    return ensure_images(docker_client, print)


@pytest.fixture(scope="session")
def store(docker_client: docker.DockerClient, test_volume: str, stage_images: dict[str, StageImage]
          ) -> Iterator[Store]:
    handle = Store(docker_client, test_volume, stage_images[STORE_IMAGE].tag, f"test{uuid.uuid4().hex[:6]}")
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def example_reports(example_build: BuildReport) -> dict[str, StageReport]:
    return {report.stage: report for report in example_build.stages}


@pytest.fixture(scope="session")
def example_results(example_reports: dict[str, StageReport]) -> dict[str, Record]:
    return {stage: report.record for stage, report in example_reports.items()}


def _prepare(client: docker.DockerClient, image: str, scratch: str, request: StageRequest, uid: int) -> None:
    """The request and the stage's own folders in its scratch volume, as the orchestrator writes them."""
    probe = client.containers.create(image, entrypoint=["true"], network_mode="none",
                                     volumes={scratch: {"bind": WORK_MOUNT, "mode": "rw"}})
    try:
        write_tree(probe, PurePosixPath(WORK_MOUNT), {
            REQUEST_FILE: Entry(data=request.to_json().encode()), CLAIMS_FILE: Entry(data=b"", uid=uid),
            "out": Entry(uid=uid), "tmp": Entry(uid=uid), "files": Entry(uid=uid)})
    finally:
        probe.remove(force=True)


@pytest.fixture(scope="session")
def run_stage(docker_client: docker.DockerClient, store: Store, example_reports: dict[str, StageReport],
              stage_images: dict[str, StageImage]):  # type: ignore[no-untyped-def]
    """Run `stage` with `options` on the example's entries of its inputs."""
    epoch = int(example_reports["resolve"].record.facts["source_date_epoch"])

    def run(stage: str, options: Any, threads: int = 1) -> StageOutcome:
        spec = spec_of(stage)
        key = f"test-{uuid.uuid4().hex}"
        request = StageRequest(stage=stage, key=key, source_date_epoch=epoch, threads=threads,
                               inputs={name: example_reports[name].key for name in spec.inputs}, options=options)
        scratch = f"liveorch-test-work-{uuid.uuid4().hex[:8]}"
        docker_client.volumes.create(scratch, labels={LABEL: "test"})
        try:
            _prepare(docker_client, stage_images[STORE_IMAGE].tag, scratch, request, spec.user)
            container = DockerContainer(stage_images[stage].tag, user=str(spec.user),
                                        volumes=[(store.name, STORE_MOUNT, "ro"), (scratch, WORK_MOUNT, "rw")],
                                        network_mode="bridge" if spec.network else "none",
                                        cap_drop=[c for c in DOCKER_DEFAULT_CAPS if c not in spec.capabilities],
                                        security_opt=["no-new-privileges"])
            container.start()
            try:
                code = container.get_wrapped_container().wait()["StatusCode"]
                out, err = container.get_logs()
                logs = out.decode(errors="replace") + err.decode(errors="replace")
            finally:
                container.stop()
            if code != 0:
                return StageOutcome(code, logs, None, key)
            try:
                record, _ = store.publish(scratch, spec, key)
            except StageFailed as error:
                return StageOutcome(1, logs + error.message, None, key)
            return StageOutcome(code, logs, record, key)
        finally:
            docker_client.volumes.get(scratch).remove(force=True)

    return run


@pytest.fixture(scope="session")
def example_plan() -> BuildPlan:
    """The plan the example build ran (the example has no lock or files of its own)."""
    return make_plan(parse_description(EXAMPLE))
