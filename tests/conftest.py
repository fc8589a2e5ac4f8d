"""Shared fixtures: one real build of the bundled example, reused by the stage and boot tests.

The build runs in its own artifact volume, removed at the end of the session together
with any container the tests left behind, so a test run leaves the engine as it found it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.engine import connect, remove_volume
from liveorch.orchestrator.images import image_tag
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.report import BuildReport

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
KIWI_FEATURES = REPO / "examples" / "kiwi-features"


def _header_set_repo(config: Path) -> str:
    """examples/kiwi-features names an obs:// repository, as KIWI users' descriptions do; CI builds it
    with the --set-repo of the command its header gives users (the <?liveorch run ...?> line)."""
    line = re.search(r"<\?liveorch (.*?)\?>", config.read_text())
    assert line, f"{config}: no <?liveorch run ...?> line"
    command = shlex.split(line.group(1))
    return command[command.index("--set-repo") + 1]


KIWI_FEATURES_REPO = _header_set_repo(KIWI_FEATURES / "config.xml")
LOADER_FILES = ["boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"]

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


@pytest.fixture(scope="session")
def example_variant(test_volume: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BuildReport]:
    """example_variant("attr=value", ...): the example with --set-type-attr changes, in the test
    volume (variants of late stages share the example's root; the same variant twice is a hit)."""
    return lambda *type_attrs: run_build(EXAMPLE, BuildOptions(
        target_dir=tmp_path_factory.mktemp("example-variant"), volume=test_volume,
        overrides=Overrides(type_attrs=list(type_attrs))), print)


class EarlyBuilds:
    """Session builds a boot phase may start in the background: two emulated boots leave a
    core idle much of the time (firmware, menus, waiting for a login), and a build fills it.
    Each is made once; whoever needs it first waits for it."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-build")
        self.futures: dict[str, Future[BuildReport]] = {}
        self.lock = threading.Lock()

    def start(self, name: str, make: Callable[[], BuildReport]) -> Future[BuildReport]:
        with self.lock:
            if name not in self.futures:
                self.futures[name] = self.pool.submit(make)
            return self.futures[name]


@pytest.fixture(scope="session")
def early_builds() -> Iterator[EarlyBuilds]:
    builds = EarlyBuilds()
    yield builds
    builds.pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def start_features_build(early_builds: EarlyBuilds, test_volume: str,
                         tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Future[BuildReport]]:
    """Starts the kiwi-features build (if nothing has yet) and returns its future."""
    def start() -> Future[BuildReport]:
        target = tmp_path_factory.mktemp("kiwi-features")
        return early_builds.start("kiwi-features", lambda: build_features(test_volume, target))
    return start


@pytest.fixture(scope="session")
def features_build(start_features_build: Callable[[], Future[BuildReport]]) -> BuildReport:
    """examples/kiwi-features with --profile Live and --set-repo: flags="overlay" with
    hybridpersistent, booted by the KIWI-surface and the overlay/persistence tests (the
    example's boots start it early)."""
    return start_features_build().result()


def build_features(volume: str, target: Path, type_attrs: tuple[str, ...] = (), **network: Any) -> BuildReport:
    """examples/kiwi-features, optionally with kiwi-ng's --set-type-attr changes (and run's
    network-boot options: pxe_url, pxe_image, pxe_append)."""
    options = BuildOptions(target_dir=target, profiles=("Live",), volume=volume, **network,
                           overrides=Overrides(set_repo=KIWI_FEATURES_REPO, type_attrs=list(type_attrs)))
    return run_build(KIWI_FEATURES, options, print)


@pytest.fixture(scope="session")
def features_variant(test_volume: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BuildReport]:
    """features_variant("attr=value", ..., pxe_url=...): a variant of the kiwi-features build in the test volume."""
    return lambda *type_attrs, **network: build_features(test_volume, tmp_path_factory.mktemp("kiwi-variant"),
                                                         type_attrs, **network)


def extract_from_iso(iso: Path, names: list[str], target: Path) -> None:
    """Files out of the ISO with the iso stage image's xorriso (the host needs none)."""
    client = docker.from_env(version="auto")
    commands = []
    for name in names:
        commands += ["-extract", f"/{name}", f"/out/{Path(name).name}"]
    client.containers.run(image_tag("iso"), entrypoint=["xorriso"], remove=True, network_mode="none", user="0",
                          command=["-osirrox", "on", "-indev", f"/in/{iso.name}", *commands],
                          volumes={str(iso.parent): {"bind": "/in", "mode": "ro"},
                                   str(target): {"bind": "/out", "mode": "rw"}})
    client.close()


@pytest.fixture(scope="session")
def iso_files() -> Callable[[Path, list[str], Path], None]:
    return extract_from_iso


def eject_through_monitor(path: Path) -> None:
    """Ejects QEMU's CD through its monitor socket, as a user pulls the disc."""
    with socket.socket(socket.AF_UNIX) as monitor:
        monitor.connect(str(path))
        monitor.sendall(b"eject -f ide1-cd0\n")
        time.sleep(2)


@pytest.fixture(scope="session")
def eject_cd() -> Callable[[Path], None]:
    return eject_through_monitor


def make_scan_disk(iso: Path, work: Path, size: str = "600M") -> tuple[Path, Path, Path]:
    """An ext4 disk holding the ISO as /images/live.iso (mkfs.ext4 -d: no mount), and the
    kernel and initrd from the ISO for a direct kernel boot."""
    content = work / "content"
    (content / "images").mkdir(parents=True)
    (content / "images" / "live.iso").write_bytes(iso.read_bytes())
    disk = work / "disk.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "DATA", "-d", str(content), str(disk), size], check=True)
    extract_from_iso(iso, LOADER_FILES, work)
    return disk, work / "linux", work / "initrd"


@pytest.fixture(scope="session")
def scan_disk_of() -> Callable[..., tuple[Path, Path, Path]]:
    return make_scan_disk


@dataclass(frozen=True)
class LocalRegistry:
    """A real OCI registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1."""

    host: str  # 127.0.0.1:PORT
    storage: Path  # its filesystem storage, for tests that corrupt a blob

    def blob_file(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":")
        return self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed: scripts/host-setup.sh installs it (Debian's docker-registry)")
    directory = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{directory / 'data'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen([binary, "serve", str(directory / "config.yml")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield LocalRegistry(f"127.0.0.1:{port}", directory / "data")
    process.terminate()
    process.wait(timeout=10)
