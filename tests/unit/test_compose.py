"""compose.yaml and the orchestrator must describe the same six stage containers."""

from __future__ import annotations

from pathlib import Path

import yaml

from liveorch.orchestrator.engine import DEFAULT_VOLUME, DOCKER_DEFAULT_CAPS
from liveorch.orchestrator.images import dockerfile_name, image_tag
from liveorch.stages.contract import ARTIFACTS_MOUNT, NETWORKED_STAGES, STAGE_CAPABILITIES, STAGES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_declares_exactly_the_stages() -> None:
    assert list(COMPOSE["services"]) == list(STAGES)


def test_each_service_matches_the_orchestrator() -> None:
    for stage, service in COMPOSE["services"].items():
        assert service["image"] == image_tag(stage)
        assert service["build"] == {"context": ".", "dockerfile": dockerfile_name(stage)}
        assert (REPO / dockerfile_name(stage)).is_file()
        assert service["network_mode"] == ("bridge" if stage in NETWORKED_STAGES else "none")
        assert service["security_opt"] == ["no-new-privileges"]
        dropped = sorted(c for c in DOCKER_DEFAULT_CAPS if c not in STAGE_CAPABILITIES[stage])
        assert sorted(service["cap_drop"]) == dropped
        assert "privileged" not in service and "cap_add" not in service and "devices" not in service
        assert service["volumes"] == [f"artifacts:{ARTIFACTS_MOUNT}"]


def test_the_artifact_volume_is_the_default_one() -> None:
    assert COMPOSE["volumes"]["artifacts"]["name"] == DEFAULT_VOLUME


def test_every_dockerfile_has_a_python_entrypoint_for_its_stage() -> None:
    for stage in STAGES:
        text = (REPO / dockerfile_name(stage)).read_text()
        assert f'ENTRYPOINT ["python3", "-m", "liveorch.stages", "{stage}"]' in text
        assert text.startswith("#") and "FROM debian:bookworm-slim" in text
