"""Rootless Podman users for the end-to-end tests (the fixtures are in conftest.py).

scripts/podman-setup.sh (run as root, hence the skip otherwise) installs Podman, makes the
user and starts its API socket; liveorch runs as that user (runuser), so the stages run in
the user's namespace, where container root is the user's uid and mknod is impossible. A
service the setup started is stopped again at the end.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveorch.orchestrator.engine import connect, remove_volume

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "podman-setup.sh"
BUILD_TIMEOUT = 45 * 60


@dataclass(frozen=True)
class PodmanUser:
    """An unprivileged user, its engine URL and the liveorch it runs."""

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

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        env_args = [f"{key}={value}" for key, value in self.env.items()]
        return subprocess.run(["runuser", "-u", self.name, "--", "env", "-i", *env_args, "podman", "--url", self.url,
                               *args], capture_output=True, text=True, timeout=600, cwd="/")

    def owned_dir(self) -> Path:
        """A fresh directory the user can write (pytest's tmp_path, or a TMPDIR, may be root-only)."""
        path = Path(tempfile.mkdtemp(prefix="liveorch-podman-", dir="/tmp"))
        os.chown(path, self.uid, -1)
        return path

    def remove_volume(self, volume: str) -> list[str]:
        """Remove the volume and every container using it, through the user's socket."""
        client = connect(self.url)
        try:
            return remove_volume(client, volume)
        finally:
            client.close()


def podman_user_for(name: str, insecure_registry: str = "") -> Iterator[PodmanUser]:
    """The user, set up by podman-setup.sh; `insecure_registry` (HOST:PORT) is one its Podman may
    pull from over plain HTTP, which the setup must write before the service starts."""
    if os.geteuid() != 0:
        pytest.skip("scripts/podman-setup.sh creates a user and installs packages: run as root")
    setup = subprocess.run([SETUP], capture_output=True, text=True, timeout=1800,
                           env={**os.environ, "LIVEORCH_PODMAN_USER": name,
                                "LIVEORCH_PODMAN_INSECURE_REGISTRY": insecure_registry})
    assert setup.returncode == 0, setup.stderr
    url = setup.stdout.strip().splitlines()[-1]
    account = pwd.getpwnam(name)
    runtime = url.removeprefix("unix://").rsplit("/podman/", 1)[0]
    env = {"HOME": account.pw_dir, "USER": name, "LOGNAME": name, "XDG_RUNTIME_DIR": runtime,
           "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
    venv = Path(account.pw_dir) / "liveorch-venv"
    source = subprocess.run(["runuser", "-u", name, "--", venv / "bin/python", "-c",
                             "import liveorch, pathlib; print(pathlib.Path(liveorch.__file__).parents[1])"],
                            capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    yield PodmanUser(url, name, account.pw_uid, env, venv / "bin/liveorch", Path(source))
    if "starting podman system service" in setup.stderr:
        subprocess.run([SETUP, "--stop"], check=False, timeout=120, env={**os.environ, "LIVEORCH_PODMAN_USER": name})
