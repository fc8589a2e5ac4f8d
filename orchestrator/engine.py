"""The engine connection: a client for DOCKER_HOST (Docker or Podman's Docker API), and
what its failures mean to a user.

Any engine failure after connecting (an API error, a restarting dockerd, a dropped
connection) becomes one EngineError line with exit code 3 through `engine_errors`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import docker
import docker.errors
import requests

from liveorch.orchestrator.errors import EngineError

LABEL = "org.liveorch"
DOCKER_DEFAULT_CAPS = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)
RESTART_HINT = "is the engine restarting? `liveorch doctor` checks it; finished stages stay cached"


def connect(host: str | None = None) -> docker.DockerClient:
    """A client for DOCKER_HOST (or `host`), with the API version the engine speaks."""
    try:
        client = docker.DockerClient(base_url=host, version="auto") if host else docker.from_env(version="auto")
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        where = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineError(f"no container engine answers at {where}: {str(error).splitlines()[0][:200]}",
                          hint="start dockerd (or set DOCKER_HOST / --engine-host to a Podman socket)") from None
    return client


def engine_cpus(client: docker.DockerClient) -> int:
    """The cores the engine's containers can use (Docker's and Podman's /info both say NCPU),
    which the stages share as thread budgets; this host's count when the engine does not say."""
    with contextlib.suppress(docker.errors.APIError, requests.RequestException, TypeError, ValueError):
        cpus = int(client.info().get("NCPU") or 0)
        if cpus > 0:
            return cpus
    return len(os.sched_getaffinity(0))


def as_engine_error(error: Exception) -> EngineError:
    """One line for an engine failure: the engine's own explanation where it gave one."""
    if isinstance(error, docker.errors.APIError):
        reason = " ".join(str(error.explanation or error).split())
        return EngineError(f"the container engine refused: {reason[:300]}")
    if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return EngineError("the connection to the container engine broke off", hint=RESTART_HINT)
    if isinstance(error, requests.exceptions.Timeout):
        return EngineError("the container engine did not answer in time", hint=RESTART_HINT)
    first = (str(error).splitlines() or [type(error).__name__])[0]
    return EngineError(f"container engine: {first[:300]}")


ENGINE_FAILURES = (docker.errors.DockerException, requests.exceptions.RequestException)


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    try:
        yield
    except ENGINE_FAILURES as error:
        raise as_engine_error(error) from None


def remove_volume(client: docker.DockerClient, name: str) -> list[str]:
    """Remove a volume and any container still using it; returns those containers."""
    leftovers = client.containers.list(all=True, filters={"volume": name})
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(name).remove(force=True)
    return [c.name for c in leftovers]


def ensure_volume(client: docker.DockerClient, name: str, labels: dict[str, str]) -> None:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(name, labels=labels)
