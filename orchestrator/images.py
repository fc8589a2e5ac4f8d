"""The six stage images: built on first use from the Dockerfiles and the stages package.

An image is tagged liveorch/<stage>:latest and labelled with the hash of its build
context; a tag whose label does not match the sources is rebuilt, so editing a stage can
never run stale code. When the Debian base image is missing and no registry answers, it
is made locally with mmdebstrap and imported under its usual name, so the Dockerfiles
stay standard.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from liveorch.orchestrator.errors import EngineError, ImageBuildError
from liveorch.stages.contract import STAGES

BASE_IMAGE = "debian:bookworm-slim"
BASE_SUITE = "bookworm"
IMAGE_REPOSITORY = "liveorch"
CONTEXT_LABEL = "org.liveorch.context"


def image_tag(stage: str) -> str:
    return f"{IMAGE_REPOSITORY}/{stage}:latest"


def content_tag(stage: str, context: str) -> str:
    return f"{IMAGE_REPOSITORY}/{stage}:{context[:16]}"


def dockerfile_name(stage: str) -> str:
    return f"Dockerfiles/{stage}.Dockerfile"


def dockerfile_path(stage: str) -> str:
    """Where the Dockerfile a stage image is built from lives (the repository's Dockerfiles/)."""
    entry = resources.files("liveorch.orchestrator.dockerfiles").joinpath(f"{stage}.Dockerfile")
    return str(Path(str(entry)).resolve()) if isinstance(entry, Path) else dockerfile_name(stage)


@dataclass(frozen=True)
class StageImage:
    stage: str
    tag: str
    id: str
    user: str


def _context_files(stage: str) -> dict[str, bytes]:
    """The build context as the repository lays it out: Dockerfiles/<stage>.Dockerfile + stages/."""
    files = {dockerfile_name(stage): resources.files("liveorch.orchestrator.dockerfiles")
             .joinpath(f"{stage}.Dockerfile").read_bytes()}
    package = resources.files("liveorch.stages")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            files[f"stages/{entry.name}"] = entry.read_bytes()
    # liveorch's own dracut modules (shell), which the initrd stage installs into the root.
    for module in sorted(package.joinpath("dracut").iterdir(), key=lambda e: e.name):
        for entry in sorted(module.iterdir(), key=lambda e: e.name):
            files[f"stages/dracut/{module.name}/{entry.name}"] = entry.read_bytes()
    return files


def _context_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def _context_tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    buffer.seek(0)
    return buffer


def ensure_base_image(client: docker.DockerClient, say: Callable[[str], None]) -> None:
    try:
        client.images.get(BASE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    say(f"pulling {BASE_IMAGE}")
    try:
        client.images.pull(BASE_IMAGE)
        return
    except docker.errors.APIError:
        say(f"no registry reachable: making {BASE_IMAGE} locally with mmdebstrap")
    if shutil.which("mmdebstrap") is None:
        raise EngineError(f"the base image {BASE_IMAGE} is missing and cannot be pulled",
                          hint="install mmdebstrap (apt-get install mmdebstrap) so liveorch can make it")
    with tempfile.TemporaryDirectory(prefix="liveorch-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        completed = subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", BASE_SUITE, str(tarball)],
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["?"])[-1]
            raise EngineError(f"mmdebstrap could not make the base image: {last}")
        # The whole reference as `repo`: Podman's Docker API ignores the separate `tag`
        # parameter of an import (the image would be named debian:latest).
        client.api.import_image_from_file(str(tarball), repository=BASE_IMAGE, changes=['CMD ["bash"]'])


def ensure_stage_image(client: docker.DockerClient, stage: str, say: Callable[[str], None],
                       force: bool = False) -> StageImage:
    files = _context_files(stage)
    context = _context_hash(files)
    # Runs use the content tag: two checkouts with different stage code on one engine each
    # get their own image. `latest` (what compose.yaml names) follows the newest build.
    tag = content_tag(stage, context)
    if not force:
        try:
            image = client.images.get(tag)
            if image.labels.get(CONTEXT_LABEL) == context:
                return StageImage(stage, tag, image.id, image.attrs["Config"].get("User") or "0")
        except docker.errors.ImageNotFound:
            pass
    ensure_base_image(client, say)
    say(f"building stage image {tag}")
    # One line that names the stage and the Dockerfile; build errors can span lines.
    failed = f"the {stage} stage image ({tag}) does not build from {dockerfile_path(stage)}"
    last_lines: list[str] = []
    try:
        # forcerm: no intermediate container stays behind, even when a step fails.
        for chunk in client.api.build(fileobj=_context_tar(files), custom_context=True, tag=tag,
                                      dockerfile=dockerfile_name(stage), labels={CONTEXT_LABEL: context},
                                      rm=True, forcerm=True, decode=True):
            if "error" in chunk:
                raise ImageBuildError(f"{failed}: {' '.join(chunk['error'].split())[:300]}",
                                      hint="\n".join(last_lines[-10:]) or None)
            text = chunk.get("stream", "").rstrip()
            if text:
                last_lines.append(text)
    except docker.errors.APIError as error:
        reason = " ".join(str(error.explanation or error).split())[:300]
        raise ImageBuildError(f"{failed}: {reason}") from None
    image = client.images.get(tag)
    image.tag(f"{IMAGE_REPOSITORY}/{stage}", "latest")
    return StageImage(stage, tag, image.id, image.attrs["Config"].get("User") or "0")


def ensure_stage_images(client: docker.DockerClient, say: Callable[[str], None],
                        force: bool = False) -> dict[str, StageImage]:
    return {stage: ensure_stage_image(client, stage, say, force) for stage in STAGES}
