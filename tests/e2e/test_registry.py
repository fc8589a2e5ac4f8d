"""Builds that travel, through a real registry on 127.0.0.1 (Debian's docker-registry):
Docker pushes the stage images and the stage cache; a rootless Podman user with an empty
image store and an empty volume pulls both and gets the same ISO without running a stage,
then rebuilds it from report.json alone; a corrupt blob in the registry is caught and its
stage runs locally."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from podman_users import BUILD_TIMEOUT, PodmanUser, podman_user_for

from liveorch.orchestrator.engine import remove_volume
from liveorch.orchestrator.report import BuildReport

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
LIVEORCH = [sys.executable, "-m", "liveorch"]
PULLER = "liveorch-pull"


def _liveorch(*args: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIVEORCH, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _summary(completed: subprocess.CompletedProcess[str]) -> dict:
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pushed(registry, example_build: BuildReport, test_volume: str, tmp_path_factory: pytest.TempPathFactory
           ) -> dict:
    """Docker's side: the images, and the example's whole cache (a cached build with --cache-push)."""
    images = _liveorch("images", "push", registry.host)
    assert images.returncode == 0, images.stdout + images.stderr
    target = tmp_path_factory.mktemp("pushed")
    summary = _summary(_liveorch("run", EXAMPLE, "--target-dir", target, "--volume", test_volume, "--json",
                                 "--cache", f"{registry.host}/liveorch-cache", "--cache-push"))
    report = json.loads(next(target.glob("*.report.json")).read_text())
    return {"summary": summary, "report": report, "images": images.stdout}


@pytest.fixture(scope="module")
def puller(registry) -> Iterator[PodmanUser]:
    """A Podman user whose image store is emptied first, allowed to pull from the local registry."""
    for user in podman_user_for(PULLER, insecure_registry=registry.host):
        removed = user.podman("rmi", "--all", "--force")
        assert removed.returncode == 0, removed.stderr
        yield user


def test_docker_pushed_images_and_every_stage(pushed: dict, example_build: BuildReport) -> None:
    assert all(state["cached"] for state in pushed["summary"]["stages"].values())
    cache = pushed["report"]["remote_cache"]
    assert cache["used"] and cache["pushed_bytes"] > 500 << 20, cache
    assert pushed["summary"]["sha256"] == example_build.sha256
    assert pushed["images"].count("@sha256:") == 7, pushed["images"]


def test_podman_pulls_everything_and_builds_nothing(pushed: dict, puller: PodmanUser, registry,
                                                    example_build: BuildReport) -> None:
    target, volume = puller.owned_dir(), f"liveorch-pull-{uuid.uuid4().hex[:8]}"
    try:
        began = time.monotonic()
        completed = puller.run("run", puller.source / "examples/bookworm-live/config.xml", "--engine-host",
                               puller.url, "--target-dir", target, "--volume", volume, "--json",
                               "--images", registry.host, "--cache", f"{registry.host}/liveorch-cache",
                               timeout=BUILD_TIMEOUT)
        seconds = time.monotonic() - began
        summary = _summary(completed)
        report = json.loads(next(target.glob("*.report.json")).read_text())
        print(f"registry-warm build as {puller.name}: {seconds:.0f} s, "
              f"{report['remote_cache']['pulled_bytes'] / 1e6:.0f} MB of stage outputs pulled")
        assert summary["sha256"] == example_build.sha256
        assert all(state["cached"] for state in summary["stages"].values()), summary["stages"]
        assert all(stage["container"] is None for stage in report["stages"]), "no stage container ran"
        assert "building stage image" not in completed.stdout, completed.stdout[-3000:]
        assert all(stage["image_digest"] for stage in report["stages"]), "each image came from the registry"
        began = time.monotonic()
        rebuilt = puller.run("rebuild", next(target.glob("*.report.json")), "--engine-host", puller.url,
                             "--images", registry.host, timeout=BUILD_TIMEOUT)
        print(rebuilt.stdout)
        print(f"rebuild as {puller.name} (no cache, the images already pulled): {time.monotonic() - began:.0f} s")
        assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
        assert f"rebuilt  {example_build.sha256}" in rebuilt.stdout and "reproduced" in rebuilt.stdout
    finally:
        leftovers = puller.remove_volume(volume)
        shutil.rmtree(target)
    assert not leftovers, leftovers


def test_a_corrupt_blob_in_the_registry_is_caught(pushed: dict, registry, example_build: BuildReport,
                                                  tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """The checksum entry's .sha256 file, rewritten inside the registry's storage: the pull
    notices, the checksum stage runs here, and the ISO is the same."""
    checksum = next(s for s in pushed["report"]["stages"] if s["stage"] == "checksum")
    blob = registry.blob_file(f"sha256:{checksum['outputs']['image.iso.sha256']['sha256']}")
    blob.write_bytes(blob.read_bytes().replace(b"  ", b" *", 1))
    volume = f"liveorch-test-corrupt-{uuid.uuid4().hex[:8]}"
    try:
        completed = _liveorch("run", EXAMPLE, "--target-dir", tmp_path, "--volume", volume, "--json",
                              "--cache", f"{registry.host}/liveorch-cache")
        summary = _summary(completed)
    finally:
        remove_volume(docker_client, volume)
    assert "the checksum entry is not usable" in completed.stdout + completed.stderr
    ran = {stage for stage, state in summary["stages"].items() if not state["cached"]}
    assert ran == {"checksum"}, summary["stages"]
    assert summary["sha256"] == example_build.sha256
