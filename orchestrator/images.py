"""The images liveorch runs: one per stage, and the store keeper (the trusted publisher).

All of them are thin layers (their code and entry point) on a base image that holds the
tools: liveorch/base (bookworm, Dockerfiles/base.packages) for all but squashfs, whose tools
must come from trixie (liveorch/base-trixie). The tools are installed once, the bases side by
side, and then the seven thin images side by side, in seconds. Each image is tagged
liveorch/<name>:<context hash>, where the hash covers its Dockerfile, exactly the code it runs
(for a stage, the files orchestrator/stage_code.py finds) and its base's own hash: two
checkouts with different code on one engine never run each other's images, and the same hash
is what the stage's cache key covers. When the Debian image a base starts from is missing and
no registry serves it, the base is made directly with mmdebstrap from the same package list,
so the Dockerfiles stay standard.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from liveorch.orchestrator.errors import EngineError, ImageBuildError
from liveorch.orchestrator.stage_code import STAGES_DIR, code_files
from liveorch.orchestrator.stage_specs import stage_specs

IMAGE_REPOSITORY = "liveorch"
CONTEXT_LABEL = "org.liveorch.context"
# The images the others are thin layers on: the tools, by Debian suite. A thin image names
# its base in its Dockerfile (ARG BASE=liveorch/<base>:latest).
BASE = "base"
BASES = (BASE, "base-trixie")
# The store keeper's image: publishes, verifies and removes store entries; runs no user code.
STORE_IMAGE = "store"
ORCHESTRATOR_DIR = Path(__file__).resolve().parent
# Left out of a base made with mmdebstrap, as the -slim images leave them out.
_UNUSED_PATHS = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


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


def _dockerfiles_file(name: str) -> bytes:
    return resources.files("liveorch.orchestrator.dockerfiles").joinpath(name).read_bytes()


def packages_name(base: str) -> str:
    return f"Dockerfiles/{base}.packages"


@functools.cache
def context_files(name: str) -> dict[str, bytes]:
    """The build context: Dockerfiles/<name>.Dockerfile and the code (for a base, the
    package list) that image holds."""
    files = {dockerfile_name(name): _dockerfiles_file(f"{name}.Dockerfile")}
    if name in BASES:
        files[packages_name(name)] = _dockerfiles_file(f"{name}.packages")
        return files
    if name == STORE_IMAGE:
        sources = _store_keeper_files()
    else:
        sources = {f"stages/{relative}": path for relative, path in code_files(stage_specs()[name]).items()}
    files.update({relative: path.read_bytes() for relative, path in sources.items()})
    return files


@functools.cache
def base_of(name: str) -> str:
    """The base a thin image is built on, from its Dockerfile's `ARG BASE=liveorch/<base>:latest`."""
    for line in context_files(name)[dockerfile_name(name)].decode().splitlines():
        if line.startswith("ARG BASE="):
            base = line.removeprefix(f"ARG BASE={IMAGE_REPOSITORY}/").removesuffix(":latest")
            if base in BASES:
                return base
    raise ImageBuildError(f"{dockerfile_path(name)} does not start from one of liveorch's bases "
                          f"(ARG BASE={IMAGE_REPOSITORY}/<{'|'.join(BASES)}>:latest, then FROM ${{BASE}})")


@functools.cache
def context_hash(name: str) -> str:
    """The hash of an image's context; a thin image's also covers the base it is built on."""
    files = context_files(name)
    digest = hashlib.sha256()
    if name not in BASES:
        digest.update(b"FROM\0" + context_hash(base_of(name)).encode())
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + hashlib.sha256(files[relative]).digest())
    return digest.hexdigest()


def base_packages(base: str = BASE) -> list[str]:
    """A base image's Debian packages: its .packages file without the comments."""
    text = context_files(base)[packages_name(base)].decode()
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def debian_base(base: str = BASE) -> str:
    """The Debian image a base starts from (its FROM line)."""
    for line in context_files(base)[dockerfile_name(base)].decode().splitlines():
        if line.startswith("FROM "):
            return line.split()[1]
    raise ImageBuildError(f"{dockerfile_path(base)} has no FROM line")


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


def _debian_base_available(client: docker.DockerClient, debian: str, say: Callable[[str], None]) -> bool:
    try:
        client.images.get(debian)
        return True
    except docker.errors.ImageNotFound:
        pass
    say(f"pulling {debian}")
    try:
        client.images.pull(debian)
        return True
    except docker.errors.APIError:
        return False


def _fast_scratch() -> str | None:
    """A RAM-backed directory for mmdebstrap's tree and tarball when there is room (2 GiB):
    unpacking a few hundred packages there takes a quarter less time than on disk."""
    shm = Path("/dev/shm")
    try:
        usage = shutil.disk_usage(shm)
    except OSError:
        return None
    return str(shm) if usage.free >= 2 << 30 and os.access(shm, os.W_OK) else None


def _unused_paths_hooks() -> list[str]:
    """Docs, man pages and translations left out, without --dpkgopt=path-exclude: with it,
    mmdebstrap unpacks the Essential set through a filter that took 11 s instead of 2 here.
    dpkg leaves them out of the packages installed after the Essential set (its own config,
    written by the essential hook); the customize hook removes the Essential set's."""
    config = "".join(f"path-exclude={path}\\n" for path in _UNUSED_PATHS)
    removed = " ".join(f'"$1"{path}' for path in _UNUSED_PATHS)
    return [f"--essential-hook=printf '{config}' > \"$1/etc/dpkg/dpkg.cfg.d/liveorch-unused\"",
            f"--customize-hook=rm -rf {removed}"]


def _make_base_with_mmdebstrap(client: docker.DockerClient, base: str, say: Callable[[str], None]) -> None:
    """A base without a registry: mmdebstrap installs its packages into the essential set of
    the Dockerfile's suite (what they depend on comes with them, apt included where a stage
    needs it), and the tarball is imported under the base's content tag."""
    tag, debian = content_tag(base), debian_base(base)
    say(f"no registry serves {debian}: making {tag} with mmdebstrap")
    if shutil.which("mmdebstrap") is None:
        raise EngineError(f"{debian} is missing and cannot be pulled",
                          hint="install mmdebstrap (apt-get install mmdebstrap) so liveorch can make its base images")
    suite = debian.removeprefix("debian:").removesuffix("-slim")
    excludes = _unused_paths_hooks()
    scratch = _fast_scratch()
    with tempfile.TemporaryDirectory(prefix="liveorch-base-", dir=scratch) as tmp:
        # Rootless, mmdebstrap's unshare mode works in TMPDIR as a subordinate uid, which a
        # 0700 folder of the user's shuts out ("remove_tree failed"); a public Debian base
        # has nothing to hide.
        os.chmod(tmp, 0o755)
        tarball = Path(tmp) / "base.tar"
        completed = subprocess.run(["mmdebstrap", "--variant=essential", "--quiet", *excludes,
                                    f"--include={','.join(base_packages(base))}", suite, str(tarball)],
                                   capture_output=True, text=True, env={**os.environ, "TMPDIR": tmp})
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["?"])[-1]
            raise EngineError(f"mmdebstrap could not make the base image {tag}: {last}")
        # The whole reference as `repo`: Podman's Docker API ignores the separate `tag`
        # parameter of an import (the image would be named ...:latest).
        client.api.import_image_from_file(str(tarball), repository=tag, changes=[
            'CMD ["bash"]', f"LABEL {CONTEXT_LABEL}={context_hash(base)}"])


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
    kind = "base image" if name in BASES else "stage image"
    failed = f"the {name} {kind} ({tag}) does not build from {dockerfile_path(name)}"
    last_lines: list[str] = []
    arguments = {} if name in BASES else {"BASE": content_tag(base_of(name))}
    try:
        # forcerm: no intermediate container stays behind, even when a step fails.
        for chunk in client.api.build(fileobj=_context_tar(context_files(name)), custom_context=True, tag=tag,
                                      dockerfile=dockerfile_name(name), labels={CONTEXT_LABEL: context_hash(name)},
                                      buildargs=arguments, rm=True, forcerm=True, decode=True):
            if "error" in chunk:
                raise ImageBuildError(f"{failed}: {' '.join(chunk['error'].split())[:300]}",
                                      hint="\n".join(last_lines[-10:]) or None)
            text = chunk.get("stream", "").rstrip()
            if text:
                last_lines.append(text)
    except docker.errors.APIError as error:
        reason = " ".join(str(error.explanation or error).split())[:300]
        raise ImageBuildError(f"{failed}: {reason}") from None


def _finish(client: docker.DockerClient, name: str) -> StageImage:
    tag = content_tag(name)
    image = client.images.get(tag)
    image.tag(f"{IMAGE_REPOSITORY}/{name}", "latest")
    return StageImage(name, tag, image.id, context_hash(name))


def ensure_base(client: docker.DockerClient, base: str, say: Callable[[str], None], force: bool = False
                ) -> StageImage:
    """A base image: present, built from its Dockerfile, or made with mmdebstrap."""
    present = None if force else _present(client, base)
    if present is not None:
        return present
    tag = content_tag(base)
    if _debian_base_available(client, debian_base(base), say):
        say(f"building the base image {tag}")
        _build(client, base, tag)
    else:
        _make_base_with_mmdebstrap(client, base, say)
    return _finish(client, base)


def _build_thin(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> StageImage:
    say(f"building stage image {content_tag(name)}")
    _build(client, name, content_tag(name))
    return _finish(client, name)


def ensure_image(client: docker.DockerClient, name: str, say: Callable[[str], None],
                 force: bool = False) -> StageImage:
    present = None if force else _present(client, name)
    if present is not None:
        return present
    ensure_base(client, base_of(name), say, force)
    return _build_thin(client, name, say)


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
    """Every stage's image and the store keeper's: present, pulled from `registry`, or built
    (the bases they need side by side, then the thin images side by side)."""
    images: dict[str, StageImage] = {}
    for name in image_names():
        present = None if force else _present(client, name)
        if present is None and registry and not force:
            present = pull_image(client, name, registry, say)
        if present is not None:
            images[name] = present
    missing = [name for name in image_names() if name not in images]
    if missing:
        bases = sorted({base_of(name) for name in missing})
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            list(pool.map(lambda base: ensure_base(client, base, say, force), bases))
            images.update(zip(missing, pool.map(lambda name: _build_thin(client, name, say), missing), strict=True))
    return {name: images[name] for name in image_names()}


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
    for name in (*BASES, *image_names()):
        present = _present(client, name)
        if present is None:
            rows.append((name, content_tag(name), None, None))
        else:
            size = client.images.get(present.tag).attrs["Size"] / 1e6
            rows.append((name, present.tag, present.id[7:19], size))
    return rows
