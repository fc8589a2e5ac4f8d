"""Why a stage container failed, in one line: its own error line, a limit it ran into, or
what the engine saw (killed from outside, out of memory, a full disk)."""

from __future__ import annotations

import contextlib

import docker
import docker.errors

from liveorch.stages.contract import ERROR_PREFIX

KILLED = (137, 143)


def _oom_killed(container: docker.models.containers.Container) -> bool:
    with contextlib.suppress(docker.errors.APIError):
        container.reload()
        return bool(container.attrs["State"].get("OOMKilled"))
    return False


def failure_message(stage: str, code: int, tail: list[str], container: docker.models.containers.Container,
                    store: str, timed_out_after: int | None = None) -> str:
    if timed_out_after is not None:
        return (f"{stage} stage timed out: still running after {timed_out_after} s "
                "(--stage-timeout raises the limit)")
    if any("No space left on device" in line for line in tail):
        return (f"{stage} stage failed: no space left on device (the store volume {store!r} "
                "or the engine's storage is full; try `liveorch cache prune`)")
    errors = [line[len(ERROR_PREFIX):] for line in tail if line.startswith(ERROR_PREFIX)]
    if errors:
        return f"{stage} stage failed: {errors[-1]}"
    if _oom_killed(container):
        return f"{stage} stage failed: out of memory (the memory limit was reached; --memory raises it)"
    if code in KILLED:
        return f"{stage} stage was killed from outside (exit {code})"
    last = next((line for line in reversed(tail) if line.strip()), "no output")
    return f"{stage} stage failed with exit code {code}: {last[:300]}"
