"""compose.yaml and the stage contracts must describe the same containers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from liveorch.orchestrator.compose_file import compose_text
from liveorch.orchestrator.engine import DOCKER_DEFAULT_CAPS
from liveorch.orchestrator.images import (
    BASE,
    BASES,
    STORE_IMAGE,
    base_of,
    base_packages,
    context_hash,
    debian_base,
    dockerfile_name,
    image_names,
    image_tag,
)
from liveorch.orchestrator.stage_specs import stage_specs
from liveorch.orchestrator.store import DEFAULT_STORE
from liveorch.stages.contract import STORE_MOUNT

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_declares_exactly_the_images() -> None:
    assert list(COMPOSE["services"]) == [*BASES, *image_names()]


def test_each_stage_service_matches_its_contract() -> None:
    for stage, spec in stage_specs().items():
        service = COMPOSE["services"][stage]
        assert service["image"] == image_tag(stage)
        assert service["build"] == {"context": ".", "dockerfile": dockerfile_name(stage)}
        assert (REPO / dockerfile_name(stage)).is_file()
        assert service["user"] == str(spec.user)
        assert service["network_mode"] == ("bridge" if spec.network else "none")
        assert service["security_opt"] == ["no-new-privileges"]
        dropped = sorted(c for c in DOCKER_DEFAULT_CAPS if c not in spec.capabilities)
        assert sorted(service["cap_drop"]) == dropped
        assert "privileged" not in service and "cap_add" not in service and "devices" not in service
        assert service["volumes"] == [f"artifacts:{STORE_MOUNT}:ro"], "stages see the store read-only"


def test_only_the_store_keeper_writes_the_store() -> None:
    keeper = COMPOSE["services"][STORE_IMAGE]
    assert keeper["volumes"] == [f"artifacts:{STORE_MOUNT}"]
    assert keeper["cap_drop"] == ["ALL"] and keeper["network_mode"] == "none"


def test_the_store_volume_is_the_default_one() -> None:
    assert COMPOSE["volumes"]["artifacts"]["name"] == DEFAULT_STORE


def test_every_dockerfile_has_a_python_entrypoint_for_its_stage() -> None:
    for stage in stage_specs():
        text = (REPO / dockerfile_name(stage)).read_text()
        assert f'ENTRYPOINT ["python3", "-m", "liveorch.stages", "{stage}"]' in text
        assert text.startswith("#")
        assert re.search(r"^ARG BASE=liveorch/base(-trixie)?:latest\nFROM \$\{BASE\}$", text, re.M)
        assert "USER" not in text, "the contract declares the user; the engine applies it"
        assert "apt-get" not in text, "tools belong in a base's .packages file"


@pytest.mark.parametrize(("base", "debian", "tools"), [
    (BASE, "debian:bookworm-slim", {"python3", "xorriso", "mmdebstrap", "isomd5sum", "fakeroot"}),
    ("base-trixie", "debian:trixie-slim", {"python3", "squashfs-tools-ng", "erofs-utils", "xfsprogs"})])
def test_each_base_installs_its_package_list(base: str, debian: str, tools: set[str]) -> None:
    text = (REPO / dockerfile_name(base)).read_text()
    assert re.search(rf"^FROM {debian}$", text, re.M) and debian_base(base) == debian
    assert f"COPY Dockerfiles/{base}.packages" in text and "apt-get install" in text
    packages = base_packages(base)
    assert tools <= set(packages)
    assert not any("#" in name or " " in name for name in packages)


def test_only_squashfs_needs_trixie() -> None:
    """The initrd stage preloads its fakeroot into a bookworm root: its glibc must not be newer."""
    assert {name: base_of(name) for name in image_names()} == {
        **dict.fromkeys(image_names(), BASE), "squashfs": "base-trixie"}


def test_every_image_hash_covers_the_base() -> None:
    """A change to the base's packages must give every thin image a new content tag."""
    for name in image_names():
        assert context_hash(name) not in {context_hash(base) for base in BASES}
    for base in BASES:
        assert COMPOSE["services"][base]["build"] == {"context": ".", "dockerfile": dockerfile_name(base)}


def test_compose_yaml_is_generated_from_the_contracts() -> None:
    assert (REPO / "compose.yaml").read_text() == compose_text(), \
        "regenerate with `python -m liveorch.orchestrator.compose_file`"
