"""Rootless Podman as the engine: the example, built by an unprivileged user through its
Podman socket with the Docker build's lock, is the same ISO, byte for byte.

scripts/podman-setup.sh (run as root, hence the skip otherwise) installs Podman, makes the
user liveorch-ci and starts its API socket; liveorch runs as that user (runuser), so the
stages run in the user's namespace, where container root is the user's uid and mknod is
impossible. What the test creates in Podman, the artifact volume and any container, is
removed at the end; the stage images and the base image stay in the user's store
(~liveorch-ci/.local/share/containers), so the next run reuses them; `podman image
prune` as that user reclaims superseded ones. A service the setup started is stopped again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest
from podman_users import BUILD_TIMEOUT, PodmanUser

from liveorch.orchestrator.report import BuildReport

pytestmark = pytest.mark.slow


def test_doctor_on_rootless_podman(podman_user: PodmanUser) -> None:
    target = podman_user.owned_dir()
    try:
        doctor = podman_user.run("doctor", "--engine-host", podman_user.url, "--target-dir", target / "out")
    finally:
        shutil.rmtree(target)
    print(doctor.stdout)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    engine = next(line for line in doctor.stdout.splitlines() if line.split()[1:2] == ["engine"])
    assert "Podman Engine" in engine and "rootless" in engine


def test_example_is_bit_identical_to_the_docker_build(podman_user: PodmanUser, example_build: BuildReport) -> None:
    target = podman_user.owned_dir()
    lock = target / "docker.lock"
    shutil.copyfile(example_build.iso.parent / "bookworm-live.lock", lock)
    os.chown(lock, podman_user.uid, -1)
    volume = f"liveorch-podman-{uuid.uuid4().hex[:8]}"
    try:
        began = time.monotonic()
        images = podman_user.run("images", "build", "--engine-host", podman_user.url, timeout=BUILD_TIMEOUT)
        assert images.returncode == 0, images.stdout + images.stderr
        print(f"stage images ready in {time.monotonic() - began:.0f} s")
        build = podman_user.run("run", podman_user.source / "examples/bookworm-live/config.xml",
                                "--engine-host", podman_user.url, "--target-dir", target, "--lock", lock,
                                "--volume", volume, timeout=BUILD_TIMEOUT)
        print(build.stdout)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        iso = target / example_build.iso.name
        sums = (target / f"{iso.name}.sha256").read_text().split()
        assert sums[0] == example_build.sha256, "rootless Podman built a different ISO than Docker"
        assert subprocess.run(["sha256sum", iso], capture_output=True, text=True, check=True
                              ).stdout.split()[0] == example_build.sha256
        assert iso.stat().st_uid == podman_user.uid
    finally:
        leftovers = podman_user.remove_volume(volume)
        shutil.rmtree(target)
    assert not leftovers, f"containers left behind in Podman: {leftovers}"
