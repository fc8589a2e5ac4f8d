"""The images liveorch runs: one per stage, and the store keeper (the trusted publisher).

Each image is built from its Dockerfile and exactly the code it runs (for a stage, the
files orchestrator/stage_code.py finds), and tagged liveorch/<name>:<context hash>: two
checkouts with different code on one engine never run each other's images, and the same
hash is what the stage's cache key covers. When the Debian base image is missing and no
registry answers, it is made locally with mmdebstrap and imported under its usual name,
so the Dockerfiles stay standard.
"""

from __future__ import annotations

import functools
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
from liveorch.orchestrator.stage_code import STAGES_DIR, code_files
from liveorch.orchestrator.stage_specs import stage_specs

BASE_IMAGE = "debian:bookworm-slim"  # most stage images' base; a Dockerfile's FROM names its own
IMAGE_REPOSITORY = "liveorch"
CONTEXT_LABEL = "org.liveorch.context"
# The store keeper's image: publishes, verifies and removes store entries; runs no user code.
STORE_IMAGE = "store"
ORCHESTRATOR_DIR = Path(__file__).resolve().parent


def image_names() -> tuple[str, ...]:
    return (*stage_specs(), STORE_IMAGE)


def image_tag(name: str) -> str:
    """The moving tag (what compose.yaml names); runs use the content tag."""
    return f"{IMAGE_REPOSITORY}/{name}:latest"


def content_tag(name: str) -> str:
    return f"{IMAGE_REPOSITORY}/{name}:{context_hash(name)[:16]}"


def dockerfile_name(name: str) -> str:
    return f"Dockerfiles/{name}.Dockerfile"


def dockerfile_path(name: str) -> str:
    """Where the Dockerfile an image is built from lives (the repository's Dockerfiles/)."""
    entry = resources.files("liveorch.orchestrator.dockerfiles").joinpath(f"{name}.Dockerfile")
    return str(Path(str(entry)).resolve()) if isinstance(entry, Path) else dockerfile_name(name)


@dataclass(frozen=True)
class StageImage:
    name: str
    tag: str
    id: str
    context: str  # the hash of the Dockerfile and code it was built from
    digest: str | None = None  # registry/repo@sha256:... when it came from (or went to) a registry


def _store_keeper_files() -> dict[str, Path]:
    return {"orchestrator/__init__.py": ORCHESTRATOR_DIR / "__init__.py",
            "orchestrator/store_keeper.py": ORCHESTRATOR_DIR / "store_keeper.py",
            "stages/__init__.py": STAGES_DIR / "__init__.py",
            "stages/contract.py": STAGES_DIR / "contract.py"}


@functools.cache
def context_files(name: str) -> dict[str, bytes]:
    """The build context: Dockerfiles/<name>.Dockerfile and the code that image runs."""
    files = {dockerfile_name(name): resources.files("liveorch.orchestrator.dockerfiles")
             .joinpath(f"{name}.Dockerfile").read_bytes()}
    if name == STORE_IMAGE:
        sources = _store_keeper_files()
    else:
        sources = {f"stages/{relative}": path for relative, path in code_files(stage_specs()[name]).items()}
    files.update({relative: path.read_bytes() for relative, path in sources.items()})
    return files


@functools.cache
def context_hash(name: str) -> str:
    files = context_files(name)
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + hashlib.sha256(files[relative]).digest())
    return digest.hexdigest()


def _context_tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    buffer.seek(0)
    return buffer


def base_image(name: str) -> str | None:
    """The image's FROM (debian:<suite>-slim): the squashfs stage needs trixie's mke2fs and
    mkfs.erofs, which read a tar; the others stay on bookworm. None when there is no FROM
    line: the engine's build then says what is wrong with the Dockerfile."""
    for line in context_files(name)[dockerfile_name(name)].decode().splitlines():
        if line.startswith("FROM "):
            return line.split()[1]
    return None


def ensure_base_image(client: docker.DockerClient, base: str, say: Callable[[str], None]) -> None:
    try:
        client.images.get(base)
        return
    except docker.errors.ImageNotFound:
        pass
    say(f"pulling {base}")
    try:
        client.images.pull(base)
        return
    except docker.errors.APIError:
        say(f"no registry reachable: making {base} locally with mmdebstrap")
    if shutil.which("mmdebstrap") is None:
        raise EngineError(f"the base image {base} is missing and cannot be pulled",
                          hint="install mmdebstrap (apt-get install mmdebstrap) so liveorch can make it")
    suite = base.removeprefix("debian:").removesuffix("-slim")
    with tempfile.TemporaryDirectory(prefix="liveorch-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        completed = subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", suite, str(tarball)],
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["?"])[-1]
            raise EngineError(f"mmdebstrap could not make the base image {base}: {last}")
        # The whole reference as `repo`: Podman's Docker API ignores the separate `tag`
        # parameter of an import (the image would be named debian:latest).
        client.api.import_image_from_file(str(tarball), repository=base, changes=['CMD ["bash"]'])


def _present(client: docker.DockerClient, name: str) -> StageImage | None:
    try:
        image = client.images.get(content_tag(name))
    except docker.errors.ImageNotFound:
        return None
    if image.labels.get(CONTEXT_LABEL) != context_hash(name):
        return None
    digest = next(iter(image.attrs.get("RepoDigests") or []), None)
    return StageImage(name, content_tag(name), image.id, context_hash(name), digest)


def _build(client: docker.DockerClient, name: str, tag: str) -> None:
    # One line that names the image and the Dockerfile; build errors can span lines.
    failed = f"the {name} stage image ({tag}) does not build from {dockerfile_path(name)}"
    last_lines: list[str] = []
    try:
        # forcerm: no intermediate container stays behind, even when a step fails.
        for chunk in client.api.build(fileobj=_context_tar(context_files(name)), custom_context=True, tag=tag,
                                      dockerfile=dockerfile_name(name), labels={CONTEXT_LABEL: context_hash(name)},
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


def ensure_image(client: docker.DockerClient, name: str, say: Callable[[str], None],
                 force: bool = False) -> StageImage:
    present = None if force else _present(client, name)
    if present is not None:
        return present
    base = base_image(name)
    if base is not None:
        ensure_base_image(client, base, say)
    tag = content_tag(name)
    say(f"building stage image {tag}")
    _build(client, name, tag)
    image = client.images.get(tag)
    image.tag(f"{IMAGE_REPOSITORY}/{name}", "latest")
    return StageImage(name, tag, image.id, context_hash(name))


def registry_reference(registry: str, name: str) -> tuple[str, str]:
    """Where an image lives in a registry: REGISTRY/liveorch-<name>:<context hash>."""
    return f"{registry.rstrip('/')}/{IMAGE_REPOSITORY}-{name}", context_hash(name)[:16]


def _digest(image: docker.models.images.Image, repository: str) -> str | None:
    return next((d for d in image.attrs.get("RepoDigests") or [] if d.startswith(repository + "@")), None)


def _pull(client: docker.DockerClient, repository: str, tag: str) -> None:
    """Pull, raising the engine's own reason: a pull's error arrives in its progress stream
    (e.g. Podman refusing a plain-HTTP registry), which images.pull() drops, leaving only a
    later "No such image"."""
    for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            raise docker.errors.APIError(chunk["error"], explanation=chunk["error"])


def pull_image(client: docker.DockerClient, name: str, registry: str, say: Callable[[str], None]
               ) -> StageImage | None:
    """The image from the registry, when it is there and was built from the same context;
    None (with a note) otherwise, so the caller builds it here."""
    repository, tag = registry_reference(registry, name)
    try:
        _pull(client, repository, tag)
        image = client.images.get(f"{repository}:{tag}")
    except (docker.errors.APIError, docker.errors.ImageNotFound) as error:
        reason = " ".join(str(getattr(error, "explanation", None) or error).split())[:200]
        say(f"note: the {name} image is not available from {registry} ({reason}): building it here")
        return None
    if image.labels.get(CONTEXT_LABEL) != context_hash(name):
        say(f"note: {repository}:{tag} was not built from this checkout's {name} code: building it here")
        return None
    image.tag(f"{IMAGE_REPOSITORY}/{name}", tag)
    image.tag(f"{IMAGE_REPOSITORY}/{name}", "latest")
    return StageImage(name, content_tag(name), image.id, context_hash(name), _digest(image, repository))


def ensure_images(client: docker.DockerClient, say: Callable[[str], None], force: bool = False,
                  registry: str | None = None) -> dict[str, StageImage]:
    """Every stage's image and the store keeper's: present, pulled from `registry`, or built."""
    images = {}
    for name in image_names():
        present = None if force else _present(client, name)
        if present is None and registry and not force:
            present = pull_image(client, name, registry, say)
        images[name] = present or ensure_image(client, name, say, force)
    return images


def push_images(client: docker.DockerClient, registry: str, say: Callable[[str], None]) -> dict[str, StageImage]:
    """`images push`: every image under REGISTRY/liveorch-<name>:<context hash>; returns them with digests."""
    pushed = {}
    for name, image in ensure_images(client, say).items():
        repository, tag = registry_reference(registry, name)
        client.images.get(image.tag).tag(repository, tag)
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise EngineError(f"pushing {repository}:{tag} failed: {' '.join(line['error'].split())[:300]}")
        pushed[name] = StageImage(name, image.tag, image.id, image.context,
                                  _digest(client.images.get(image.tag), repository))
    return pushed


def describe_images(client: docker.DockerClient) -> list[tuple[str, str, str | None, float | None]]:
    """(name, content tag, short id or None when not built, size in MB) for `images ls`."""
    rows = []
    for name in image_names():
        present = _present(client, name)
        if present is None:
            rows.append((name, content_tag(name), None, None))
        else:
            size = client.images.get(present.tag).attrs["Size"] / 1e6
            rows.append((name, present.tag, present.id[7:19], size))
    return rows
