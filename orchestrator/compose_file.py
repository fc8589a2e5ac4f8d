"""compose.yaml, written from the stage contracts: the images liveorch runs, each service
with its contract's user, network and capabilities, the store read-only.

compose is a convenience for building and inspecting the images (`docker compose build`);
liveorch runs the stages itself, each with its own scratch volume. A test keeps the file in
step with the contracts; regenerate it with `python -m liveorch.orchestrator.compose_file`.
"""

from __future__ import annotations

from pathlib import Path

from liveorch.orchestrator.engine import DOCKER_DEFAULT_CAPS
from liveorch.orchestrator.images import BASES, STORE_IMAGE, dockerfile_name, image_tag
from liveorch.orchestrator.stage_specs import stage_specs
from liveorch.orchestrator.store import DEFAULT_STORE
from liveorch.stages.contract import STORE_MOUNT, StageSpec

HEADER = """\
# Generated from the stage contracts by `python -m liveorch.orchestrator.compose_file`; do not edit.
# The stage images, the store keeper's image and the store volume, as liveorch builds and runs them.
# `docker compose build base base-trixie && docker compose build` builds images like the ones `liveorch run` builds
# on first use (liveorch's own build context holds only the files each stage runs); every image is a thin
# layer on a base (liveorch/base, or base-trixie for squashfs), so the bases come first. The services are not
# meant to be started by compose: liveorch runs each stage with a request and a scratch volume of its own
# at /work (see docs/architecture.md).
"""


def _service(name: str, user: int, network: bool, cap_drop: list[str], volume: str) -> list[str]:
    return [f"  {name}:", f"    image: {image_tag(name)}", "    build:", "      context: .",
            f"      dockerfile: {dockerfile_name(name)}", f'    user: "{user}"',
            f"    network_mode: {'bridge' if network else 'none'}", '    security_opt: ["no-new-privileges"]',
            f"    cap_drop: [{', '.join(cap_drop)}]", "    volumes:", f"      - {volume}", "    profiles: [stages]"]


def _stage_service(spec: StageSpec) -> list[str]:
    dropped = [c for c in DOCKER_DEFAULT_CAPS if c not in spec.capabilities]
    return _service(spec.name, spec.user, spec.network, dropped, f"artifacts:{STORE_MOUNT}:ro")


def _base_service(base: str) -> list[str]:
    """A base is only built on, never run: no user, network or volume to declare."""
    return [f"  {base}:", f"    image: {image_tag(base)}", "    build:", "      context: .",
            f"      dockerfile: {dockerfile_name(base)}", "    profiles: [stages]"]


def compose_text() -> str:
    lines = ["services:"]
    for base in BASES:
        lines += _base_service(base)
    for spec in stage_specs().values():
        lines += _stage_service(spec)
    lines += _service(STORE_IMAGE, 0, False, ["ALL"], f"artifacts:{STORE_MOUNT}")
    lines += ["volumes:", "  artifacts:", f"    name: {DEFAULT_STORE}"]
    return HEADER + "\n".join(lines) + "\n"


def main() -> None:
    path = Path.cwd() / "compose.yaml"
    path.write_text(compose_text())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
