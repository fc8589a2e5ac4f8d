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
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveorch.orchestrator.build import BuildReport
from liveorch.orchestrator.engine import connect, remove_volume

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "podman-setup.sh"
USER = "liveorch-ci"
BUILD_TIMEOUT = 45 * 60


@dataclass(frozen=True)
class PodmanUser:
    """The unprivileged user, its engine URL and the liveorch it runs."""

    url: str
    name: str
    uid: int
    env: dict[str, str]
    liveorch: Path
    source: Path

    def run(self, *args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run liveorch as the user, with a clean environment (no root HOME, no DOCKER_HOST)."""
        env_args = [f"{key}={value}" for key, value in self.env.items()]
        return subprocess.run(["runuser", "-u", self.name, "--", "env", "-i", *env_args, self.liveorch,
                               *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd="/")

    def owned_dir(self) -> Path:
        """A fresh directory the user can write (pytest's tmp_path, or a TMPDIR, may be root-only)."""
        path = Path(tempfile.mkdtemp(prefix="liveorch-podman-", dir="/tmp"))
        os.chown(path, self.uid, -1)
        return path


@pytest.fixture(scope="module")
def podman_user() -> Iterator[PodmanUser]:
    if os.geteuid() != 0:
        pytest.skip("scripts/podman-setup.sh creates a user and installs packages: run as root")
    setup = subprocess.run([SETUP], capture_output=True, text=True, timeout=1800)
    assert setup.returncode == 0, setup.stderr
    url = setup.stdout.strip().splitlines()[-1]
    account = pwd.getpwnam(USER)
    runtime = url.removeprefix("unix://").rsplit("/podman/", 1)[0]
    env = {"HOME": account.pw_dir, "USER": USER, "LOGNAME": USER, "XDG_RUNTIME_DIR": runtime,
           "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
    venv = Path(account.pw_dir) / "liveorch-venv"
    source = subprocess.run(["runuser", "-u", USER, "--", venv / "bin/python", "-c",
                             "import liveorch, pathlib; print(pathlib.Path(liveorch.__file__).parents[1])"],
                            capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    yield PodmanUser(url, USER, account.pw_uid, env, venv / "bin/liveorch", Path(source))
    if "starting podman system service" in setup.stderr:
        subprocess.run([SETUP, "--stop"], check=False, timeout=120)


def _remove_from_podman(url: str, volume: str) -> list[str]:
    """Remove the volume and every container using it, through the user's socket."""
    client = connect(url)
    try:
        return remove_volume(client, volume)
    finally:
        client.close()


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
        leftovers = _remove_from_podman(podman_user.url, volume)
        shutil.rmtree(target)
    assert not leftovers, f"containers left behind in Podman: {leftovers}"
