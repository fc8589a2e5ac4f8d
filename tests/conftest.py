"""Shared fixtures: one real build of the bundled example, reused by the stage and boot tests.

The build runs in its own artifact volume, removed at the end of the session together
with any container the tests left behind, so a test run leaves the engine as it found it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from orchestrator.build import BuildOptions, BuildReport, run_build
from orchestrator.engine import connect, remove_volume

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_volume(docker_client: docker.DockerClient) -> Iterator[str]:
    """A private artifact volume; at the end no container may still be using it."""
    name = f"liveorch-test-{uuid.uuid4().hex[:8]}"
    yield name
    leftovers = remove_volume(docker_client, name)
    assert not leftovers, f"containers left behind: {leftovers}"


@pytest.fixture(scope="session")
def example_build(test_volume: str, tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    target = tmp_path_factory.mktemp("example-out")
    return run_build(EXAMPLE, BuildOptions(target_dir=target, volume=test_volume), print)
