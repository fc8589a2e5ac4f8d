"""Bad input and faults through the real CLI: one clear line, the documented exit code, no
ISO in the target directory, no containers left behind, and a cheap resume."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from lxml import etree

from liveorch.orchestrator.cache import list_entries
from liveorch.orchestrator.engine import LABEL, remove_volume

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
LIVEORCH = [sys.executable, "-m", "liveorch"]


def _variant(tmp_path: Path, extra_package: str) -> Path:
    """The example with one more package: new resolve and rootfs keys, nothing cached past resolve."""
    tree = etree.parse(str(EXAMPLE))
    packages = tree.find("packages[@type='image']")
    etree.SubElement(packages, "package", name=extra_package)
    path = tmp_path / "config.xml"
    tree.write(str(path))
    return path


def _liveorch(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LIVEORCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def _assert_clean_failure(completed: subprocess.CompletedProcess, code: int, message: str, target: Path) -> None:
    assert completed.returncode == code, completed.stdout[-2000:] + completed.stderr[-2000:]
    errors = [ln for ln in completed.stderr.splitlines() if ln.startswith("liveorch: error: ")]
    assert len(errors) == 1 and message in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    assert not list(target.glob("*.iso")) if target.is_dir() else True
    assert not list(target.glob(".*partial*")) if target.is_dir() else True


def _no_containers_of(client: docker.DockerClient, volume: str) -> None:
    stragglers = [c.name for c in client.containers.list(all=True, filters={"volume": volume})
                  if c.labels.get(LABEL) != "probe" or c.status == "running"]
    assert not stragglers, stragglers


def test_engine_not_reachable(tmp_path: Path) -> None:
    completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(tmp_path),
                          env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    _assert_clean_failure(completed, 3, "no container engine answers", tmp_path)


def test_target_directory_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(blocker / "out"))
    _assert_clean_failure(completed, 5, "is not writable", tmp_path)


def test_broken_description_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "config.xml"
    broken.write_text(EXAMPLE.read_text().replace("<packages type=\"image\">", "<packages type=\"image\"", 1))
    completed = _liveorch("run", str(broken), "--target-dir", str(tmp_path / "out"))
    _assert_clean_failure(completed, 2, f"{broken}:", tmp_path / "out")


@pytest.mark.slow
def test_unknown_package(tmp_path: Path, test_volume: str, docker_client: docker.DockerClient) -> None:
    config = _variant(tmp_path, "no-such-package-xyz")
    target = tmp_path / "out"
    completed = _liveorch("run", str(config), "--target-dir", str(target), "--volume", test_volume)
    _assert_clean_failure(completed, 4, "package not found: no-such-package-xyz", target)
    assert "deb.debian.org" in completed.stderr
    _no_containers_of(docker_client, test_volume)


@pytest.mark.slow
def test_full_disk_is_reported(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """The artifact volume on a 24 MB filesystem: resolve's downloads fill it."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs on the host for the volume: run it as root (CI does)")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    name = f"liveorch-test-tiny-{os.getpid()}"
    docker_client.volumes.create(name, driver="local", driver_opts={"type": "none", "o": "bind", "device": str(small)})
    try:
        completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(tmp_path / "out"), "--volume", name)
        _assert_clean_failure(completed, 4, "no space left on device", tmp_path / "out")
        _no_containers_of(docker_client, name)
    finally:
        remove_volume(docker_client, name)
        subprocess.run(["umount", str(small)], check=True)


class _Run:
    """A `liveorch run` in the background, read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([*LIVEORCH, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"never saw {text!r}: {''.join(self.lines)[-2000:]}")

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_the_stage_and_the_next_run_resumes(sig: signal.Signals, tmp_path: Path, test_volume: str,
                                                            docker_client: docker.DockerClient) -> None:
    # Its own package per case: the Ctrl-C case's second run finishes rootfs, which the
    # SIGTERM case must still find uncached.
    config = _variant(tmp_path, "nano" if sig is signal.SIGINT else "less")
    target = tmp_path / "out"
    first = _Run(str(config), "--target-dir", str(target), "--volume", test_volume)
    first.wait_for("[rootfs] running")
    time.sleep(3)
    stopped_at = time.monotonic()
    first.process.send_signal(sig)
    code, err = first.finish()
    assert time.monotonic() - stopped_at < 30
    assert code == 130, err
    assert "interrupted during the rootfs stage" in err and "Traceback" not in err
    _no_containers_of(docker_client, test_volume)
    assert not list(target.glob("*.iso"))
    second = _Run(str(config), "--target-dir", str(target), "--volume", test_volume)
    second.wait_for("[resolve] cached")
    second.wait_for("[rootfs] running")
    if sig is signal.SIGINT:
        # squashfs and initrd run side by side: Ctrl-C stops both, and leaves nothing behind
        second.wait_for("[initrd] running")
        time.sleep(3)
    second.process.send_signal(signal.SIGINT)
    code, err = second.finish()
    assert code == 130, err
    if sig is signal.SIGINT:
        assert "interrupted during the squashfs and initrd stages" in err and "Traceback" not in err, err
    _no_containers_of(docker_client, test_volume)
    assert not _leftovers(docker_client, test_volume), "the cancelled stages' scratch volumes must go too"


@pytest.mark.slow
def test_a_stage_killed_from_outside_is_named(tmp_path: Path, test_volume: str,
                                              docker_client: docker.DockerClient) -> None:
    config = _variant(tmp_path, "less")
    target = tmp_path / "out"
    run = _Run(str(config), "--target-dir", str(target), "--volume", test_volume, "--no-cache")
    run.wait_for("[rootfs] running")
    time.sleep(3)
    victims = docker_client.containers.list(filters={"label": f"{LABEL}.stage=rootfs", "volume": test_volume})
    assert len(victims) == 1
    victims[0].kill()
    code, err = run.finish()
    assert code == 4, err
    assert "rootfs stage was killed from outside" in err
    _no_containers_of(docker_client, test_volume)
    assert not list(target.glob("*.iso"))


def _with_hook(tmp_path: Path, script: str, executable: bool = True) -> Path:
    """The example plus a config.sh: resolve stays cached, rootfs runs up to the hook."""
    directory = tmp_path / "described"
    directory.mkdir()
    (directory / "config.xml").write_text(EXAMPLE.read_text())
    hook = directory / "config.sh"
    hook.write_text(script)
    hook.chmod(0o755 if executable else 0o644)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(("script", "options", "message"), [
    ("#!/bin/bash\necho preparing\necho 'cannot configure the widget' >&2\nexit 3\n", [],
     "config.sh failed with exit code 3: cannot configure the widget"),
    ("#!/bin/bash\necho waiting forever\nsleep 600\n", ["--hook-timeout", "5"],
     "config.sh did not finish within 5 s"),
    ("#!/usr/bin/python3\nprint('hello')\n", [], "config.sh: its interpreter /usr/bin/python3 is not in the image"),
], ids=["failing", "hanging", "missing-interpreter"])
def test_hook_failures(script: str, options: list[str], message: str, tmp_path: Path, test_volume: str,
                       docker_client: docker.DockerClient, example_build: object) -> None:
    target = tmp_path / "out"
    started = time.monotonic()
    completed = _liveorch("run", str(_with_hook(tmp_path, script)), "--target-dir", str(target),
                          "--volume", test_volume, *options)
    _assert_clean_failure(completed, 4, f"rootfs stage failed: {message}", target)
    assert time.monotonic() - started < 300
    _no_containers_of(docker_client, test_volume)


@pytest.mark.slow
def test_unreachable_repository_is_named(tmp_path: Path, test_volume: str,
                                         docker_client: docker.DockerClient) -> None:
    target = tmp_path / "out"
    completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(target), "--volume", test_volume,
                          "--ignore-repos", "--add-repo", "http://127.0.0.1:9/debian,apt-deb,dead,,,,,main,bookworm")
    _assert_clean_failure(completed, 4, "repository http://127.0.0.1:9/debian bookworm is unreachable", target)
    _no_containers_of(docker_client, test_volume)


def test_malformed_repo_spec_names_the_field(tmp_path: Path) -> None:
    completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(tmp_path), "--add-repo",
                          "http://deb.debian.org/debian,apt-deb,x,high")
    _assert_clean_failure(completed, 2, "field 'priority' (4)", tmp_path)


@pytest.mark.slow
def test_concurrent_runs_do_not_interfere(tmp_path: Path, test_volume: str, docker_client: docker.DockerClient,
                                          example_build: object) -> None:
    """Three builds at once on one artifact volume: two that each run their own iso and
    checksum stages, one fully cached; each ends with its own, verified ISO."""
    runs = []
    for timeout in ("4", "5", None):
        directory = tmp_path / f"timeout-{timeout}"
        directory.mkdir()
        config = directory / "config.xml"
        tree = etree.parse(str(EXAMPLE))
        if timeout:
            tree.find("preferences/type/bootloader").set("timeout", timeout)
        tree.write(str(config))
        runs.append((directory / "out", subprocess.Popen(
            [*LIVEORCH, "run", str(config), "--target-dir", str(directory / "out"), "--volume", test_volume],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    hashes = []
    for target, process in runs:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, out[-2000:] + err[-2000:]
        iso = next(target.glob("*.iso"))
        recorded, name = (target / f"{iso.name}.sha256").read_text().split()
        assert name == iso.name and recorded == hashlib.sha256(iso.read_bytes()).hexdigest()
        hashes.append(recorded)
    assert len(set(hashes)) == 3, "each timeout gives its own ISO"
    _no_containers_of(docker_client, test_volume)


def _checkout_with_broken(tmp_path: Path, stage: str, breakage: str, marker: str) -> Path:
    """A copy of the checkout (liveorch, orchestrator, stages, Dockerfiles) whose `stage` Dockerfile is
    broken; `python -m liveorch` run in it imports the copy, as a user's edited checkout would."""
    checkout = tmp_path / "checkout"
    for name in ("liveorch", "orchestrator", "stages", "Dockerfiles"):
        shutil.copytree(REPO / name, checkout / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    dockerfile = checkout / "Dockerfiles" / f"{stage}.Dockerfile"
    text = dockerfile.read_text()
    assert "\nENV " in text and "\nFROM " in text, text
    if breakage == "failing-step":
        # a stage image is a thin layer (ARG, FROM, ENV, COPY): the failing step goes before its ENV
        text = text.replace("\nENV ", f"\nRUN echo {marker} && exit 7\nENV ", 1)
    else:
        text = text.replace("\nFROM ", f"\n# {marker}\nFORM ", 1)
    dockerfile.write_text(text)
    return checkout


@pytest.mark.slow
@pytest.mark.parametrize(("breakage", "reason"), [
    ("failing-step", "returned a non-zero code: 7"),
    ("syntax", "unknown instruction: FORM"),
])
def test_a_stage_image_that_does_not_build(breakage: str, reason: str, tmp_path: Path,
                                           docker_client: docker.DockerClient) -> None:
    """`images build` and `run` (which builds missing images on the fly) both stop with one line
    naming the stage and its Dockerfile, exit 3, and leave no container, image or volume."""
    marker = f"liveorch-test-broken-{uuid.uuid4().hex[:8]}"
    checkout = _checkout_with_broken(tmp_path, "resolve", breakage, marker)
    dockerfile = checkout / "Dockerfiles" / "resolve.Dockerfile"
    expected = "the resolve stage image (liveorch/resolve:"
    built = _liveorch("images", "build", cwd=checkout)
    _assert_clean_failure(built, 3, expected, tmp_path)
    error = next(ln for ln in built.stderr.splitlines() if ln.startswith("liveorch: error: "))
    assert f"does not build from {dockerfile}: " in error and reason in error, error
    target, volume = tmp_path / "out", f"liveorch-test-imagefail-{os.getpid()}"
    ran = _liveorch("run", str(EXAMPLE), "--target-dir", str(target), "--volume", volume, cwd=checkout)
    _assert_clean_failure(ran, 3, expected, target)
    assert reason in ran.stderr
    tag = error.split("(", 1)[1].split(")", 1)[0]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)
    stragglers = [c.name for c in docker_client.containers.list(all=True)
                  if marker in " ".join(c.attrs["Config"].get("Cmd") or [])]
    assert not stragglers, stragglers
    assert not list(target.iterdir())


def _local_repository(root: Path, signing: str) -> str:
    """A one-package apt repository (suite bookworm, component main) under `root`: its Release
    unsigned, or signed (InRelease) by a fresh key no keyring knows. Returns the package name."""
    package = "liveorch-test-hello"
    build = root / "build" / package
    (build / "DEBIAN").mkdir(parents=True)
    (build / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: liveorch <t@example.invalid>\n"
        "Description: a package from a local test repository\n")
    (build / "usr/share/doc" / package).mkdir(parents=True)
    (build / "usr/share/doc" / package / "hello").write_text("hello\n")
    deb = root / "pool" / f"{package}_1.0_all.deb"
    deb.parent.mkdir()
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(build), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(root / "build")
    data = deb.read_bytes()
    index = (f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: liveorch <t@example.invalid>\n"
             f"Filename: pool/{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
             "Description: a package from a local test repository\n\n").encode()
    dists = root / "dists" / "bookworm"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    (dists / "main" / "binary-amd64" / "Packages").write_bytes(index)
    (dists / "Release").write_text(
        "Origin: liveorch-test\nSuite: bookworm\nCodename: bookworm\nDate: Sat, 01 Jan 2000 00:00:00 UTC\n"
        "Architectures: amd64 all\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(index).hexdigest()} {len(index)} main/binary-amd64/Packages\n")
    if signing == "unknown-key":
        home = root.parent / "gnupg"
        home.mkdir(mode=0o700)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run([*gpg, "--quick-gen-key", "liveorch test <t@example.invalid>", "ed25519", "sign", "never"],
                       check=True, capture_output=True)
        subprocess.run([*gpg, "--clearsign", "--output", str(dists / "InRelease"), str(dists / "Release")],
                       check=True, capture_output=True)
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    return package


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve(directory: Path, client: docker.DockerClient) -> Iterator[str]:
    """Serve `directory` over HTTP on the docker bridge's address, where stage containers reach the host."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # Docker 20.10 may list only the subnet; the bridge's address is then its first host.
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    server = http.server.ThreadingHTTPServer((gateway, 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{gateway}:{server.server_address[1]}/repo"
    finally:
        server.shutdown()
        server.server_close()


def _with_repository(tmp_path: Path, url: str, package: str, gpgcheck: str | None,
                     signing_key: str | None = None, directory: str | None = None) -> Path:
    """A small description: Debian plus the local repository (with <signing key=...> if given), and
    only the local package requested."""
    tree = etree.parse(str(EXAMPLE))
    root = tree.getroot()
    repository = etree.Element("repository", type="apt-deb", alias="local", distribution="bookworm",
                               components="main")
    if gpgcheck is not None:
        repository.set("repository_gpgcheck", gpgcheck)
    etree.SubElement(repository, "source", path=url)
    if signing_key is not None:
        etree.SubElement(repository, "signing", key=signing_key)
    root.findall("repository")[-1].addnext(repository)
    packages = root.find("packages[@type='image']")
    for element in list(packages):
        packages.remove(element)
    etree.SubElement(packages, "package", name=package)
    path = tmp_path / (directory or f"gpgcheck-{gpgcheck}") / "config.xml"
    path.parent.mkdir()
    tree.write(str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("signing", "message"), [
    ("unsigned", "is not signed, and signatures are required"),
    ("unknown-key", "is signed by an unknown key (NO_PUBKEY "),
])
def test_untrusted_repository(signing: str, message: str, tmp_path: Path, test_volume: str,
                              docker_client: docker.DockerClient) -> None:
    """Signatures are required by default: the resolve stage names the repository and stops; marked
    repository_gpgcheck="false" the same repository is used (its package lands in the lock)."""
    package = _local_repository(tmp_path / "repo", signing)
    with _serve(tmp_path, docker_client) as url:
        target = tmp_path / "out"
        for gpgcheck in (None, "true"):
            completed = _liveorch("run", str(_with_repository(tmp_path, url, package, gpgcheck)),
                                  "--target-dir", str(target), "--volume", test_volume)
            _assert_clean_failure(completed, 4, f"resolve stage failed: repository {url} bookworm {message}", target)
            _no_containers_of(docker_client, test_volume)
        lock = tmp_path / "trusted.lock"
        completed = _liveorch("lock", str(_with_repository(tmp_path, url, package, "false")), "--output", str(lock),
                              "--volume", test_volume)
        assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    recorded = json.loads(lock.read_text())
    locked = {p["name"]: p for p in recorded["packages"]}
    assert locked[package]["repository"] == "local"
    trust = {r["alias"]: r["trusted"] for r in recorded["repositories"]}
    assert trust["local"] is True and not any(v for k, v in trust.items() if k != "local"), trust
    assert "warning: repository 'local'" in completed.stdout and "without signature checks" in completed.stdout
    _no_containers_of(docker_client, test_volume)


@pytest.mark.slow
def test_repository_signing_key(tmp_path: Path, test_volume: str, docker_client: docker.DockerClient) -> None:
    """The repository signed by a key no keyring knows passes with signatures required once
    <signing key=...> gives that key: ASCII-armored beside the description (a relative path),
    or binary anywhere on the host (a file:// URI)."""
    package = _local_repository(tmp_path / "repo", "unknown-key")
    gpg = ["gpg", "--homedir", str(tmp_path / "gnupg"), "--batch", "--quiet"]
    binary = tmp_path / "keys" / "local.gpg"
    binary.parent.mkdir()
    binary.write_bytes(subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout)
    armored = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout
    subprocess.run(["gpgconf", "--homedir", str(tmp_path / "gnupg"), "--kill", "all"], capture_output=True)
    with _serve(tmp_path, docker_client) as url:
        for directory, key in (("armored", "local.asc"), ("binary", f"file://{binary}")):
            described = _with_repository(tmp_path, url, package, "true", signing_key=key, directory=directory)
            (described.parent / "local.asc").write_bytes(armored)
            lock = tmp_path / f"{directory}.lock"
            completed = _liveorch("lock", str(described), "--output", str(lock), "--volume", test_volume)
            assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
            locked = {p["name"]: p for p in json.loads(lock.read_text())["packages"]}
            assert locked[package]["repository"] == "local"
            _no_containers_of(docker_client, test_volume)


def _leftovers(client: docker.DockerClient, volume: str) -> list[str]:
    return [e.key for e in list_entries(client, volume) if e.kind in ("work", "kept")]


@pytest.mark.slow
def test_keep_work_and_clean(tmp_path: Path, test_volume: str, docker_client: docker.DockerClient,
                             example_build: object) -> None:
    """A failed stage leaves nothing but the finished stages' cache entries; with --keep-work its
    scratch volume (request, partial outputs, its output) stays, where the error says, until
    `liveorch clean` removes it."""
    described = _with_hook(tmp_path, "#!/bin/bash\necho configuring the widget\necho widget broken >&2\nexit 3\n")
    target = tmp_path / "out"
    message = "rootfs stage failed: config.sh failed with exit code 3: widget broken"
    completed = _liveorch("run", str(described), "--target-dir", str(target), "--volume", test_volume)
    _assert_clean_failure(completed, 4, message, target)
    assert "work kept" not in completed.stderr
    assert not _leftovers(docker_client, test_volume)
    cached = {f"{e.stage}/{e.key}" for e in list_entries(docker_client, test_volume)}

    completed = _liveorch("run", str(described), "--target-dir", str(target), "--volume", test_volume, "--keep-work")
    _assert_clean_failure(completed, 4, message, target)
    _no_containers_of(docker_client, test_volume)
    kept_line = next(ln for ln in completed.stderr.splitlines() if "work kept: " in ln)
    kept = kept_line.split("work kept: volume ", 1)[1].split()[0]
    assert kept.startswith("liveorch-work-") and kept.endswith("-rootfs"), kept_line
    assert _leftovers(docker_client, test_volume) == [kept]
    copy = next(ln for ln in completed.stderr.splitlines() if "copy it here: " in ln).split("copy it here: ", 1)[1]
    (tmp_path / "inspect").mkdir()
    subprocess.run(copy, shell=True, check=True, cwd=tmp_path / "inspect", capture_output=True)
    inspected = tmp_path / "inspect"
    assert json.loads((inspected / "request.json").read_text())["stage"] == "rootfs"
    assert "widget broken" in (inspected / "stage.log").read_text()

    cleaned = _liveorch("clean", "--volume", test_volume)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "and 1 kept ones" in cleaned.stdout, cleaned.stdout
    assert not _leftovers(docker_client, test_volume)
    assert {f"{e.stage}/{e.key}" for e in list_entries(docker_client, test_volume)} == cached


@pytest.mark.slow
def test_clean_leaves_a_running_build_alone(tmp_path: Path, test_volume: str, docker_client: docker.DockerClient,
                                            example_build: object) -> None:
    """`liveorch clean` during a build on the same volume removes nothing of it: the build ends
    with its own error (here its hook's timeout), not a missing probe or work directory."""
    described = _with_hook(tmp_path, "#!/bin/bash\necho waiting\nsleep 600\n")
    target = tmp_path / "out"
    run = _Run(str(described), "--target-dir", str(target), "--volume", test_volume, "--hook-timeout", "15")
    run.wait_for("[rootfs] running")
    time.sleep(2)
    cleaned = _liveorch("clean", "--volume", test_volume)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 0 stopped containers" in cleaned.stdout
    assert "removed 0 unfinished work volumes" in cleaned.stdout, cleaned.stdout
    code, err = run.finish(timeout=300)
    assert code == 4 and "config.sh did not finish within 15 s" in err, err
    _no_containers_of(docker_client, test_volume)
    assert not _leftovers(docker_client, test_volume)


@pytest.mark.slow
def test_prune_all_leaves_a_running_build_alone(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """`cache prune --all` (or `--max-size 0`) during a build removes nothing the build holds: its
    resolve result stays, `cache ls` traces it to the build's description, and the build ends
    with its own error (the hook's timeout), not a missing input."""
    volume = f"liveorch-test-prune-{uuid.uuid4().hex[:8]}"
    try:
        described = _with_hook(tmp_path, "#!/bin/bash\necho waiting\nsleep 600\n")
        run = _Run(str(described), "--target-dir", str(tmp_path / "out"), "--volume", volume, "--hook-timeout", "20")
        run.wait_for("[rootfs] running")
        time.sleep(3)
        pruned = _liveorch("cache", "prune", "--all", "--volume", volume)
        assert pruned.returncode == 0, pruned.stderr
        assert [e.stage for e in list_entries(docker_client, volume) if e.kind == "result"] == ["resolve"]
        fitted = _liveorch("cache", "prune", "--max-size", "0", "--volume", volume)
        assert fitted.returncode == 0 and "held by running builds" in fitted.stdout, fitted.stdout + fitted.stderr
        listed = _liveorch("cache", "ls", "--volume", volume)
        lines = listed.stdout.splitlines()
        assert lines[0].split()[:3] == ["stage", "key", "size"], listed.stdout
        (resolve,) = [line for line in lines if line.startswith("resolve ")]
        assert resolve.endswith(str((described / "config.xml").absolute())), listed.stdout
        code, err = run.finish(timeout=300)
        assert code == 4 and "config.sh did not finish within 20 s" in err, err
        _no_containers_of(docker_client, volume)
    finally:
        remove_volume(docker_client, volume)
