"""The GitHub Actions workflow and the composite action, checked against the schemas GitHub's
own editors use (vendored in check-jsonschema, so no network) and for what they promise:
the build runs without sudo, the ISO is boot-tested and uploaded with its checksum, lock
and log, and no `${{ }}` expression is pasted into a shell script (inputs go through env)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "build.yml"
FLEET = REPO / ".github" / "workflows" / "fleet.yml"
ACTION = REPO / "action.yml"
EXAMPLE = REPO / ".github" / "workflows" / "example-live-iso.yml"


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _runs(steps: list[dict[str, Any]]) -> list[str]:
    return [step["run"] for step in steps if "run" in step]


@pytest.mark.parametrize(("path", "schema"), [(WORKFLOW, "vendor.github-workflows"),
                                              (FLEET, "vendor.github-workflows"),
                                              (EXAMPLE, "vendor.github-workflows"),
                                              (ACTION, "vendor.github-actions")])
def test_valid_against_the_schema(path: Path, schema: str) -> None:
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_workflow_builds_without_sudo_then_boots_and_uploads() -> None:
    workflow = _load(WORKFLOW)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"
    runs = _runs(job["steps"])
    build = [run for run in runs if "liveorch run" in run]
    assert build and all("sudo" not in run for run in build)
    assert all(line.strip().startswith("sudo apt-get") for run in runs for line in run.splitlines()
               if "sudo" in line)
    assert any("liveorch test" in run and "--uefi" in run for run in runs)
    uploaded = "\n".join(str(step["with"]["path"]) for step in job["steps"]
                         if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    for suffix in ("*.iso", "*.iso.sha256", "*.lock", "*.log"):
        assert f"/{suffix}" in uploaded


def test_workflow_cache_helper_exists() -> None:
    runs = "\n".join(_runs(_load(WORKFLOW)["jobs"]["example-iso"]["steps"]))
    helper = REPO / "scripts" / "actions-cache.sh"
    assert "scripts/actions-cache.sh load" in runs and "scripts/actions-cache.sh save" in runs
    assert os.access(helper, os.X_OK)
    assert subprocess.run(["bash", "-n", helper]).returncode == 0


def test_action_inputs_and_outputs() -> None:
    """The full input and output lists are checked in test_action.py; here what must not change."""
    action = _load(ACTION)
    assert action["inputs"]["description"]["required"] is True
    assert action["inputs"]["cache-push"]["default"] == "false", "pushing to a shared cache is asked for"
    assert action["inputs"]["cache"]["default"] == "none" and action["inputs"]["boot-test"]["default"] == "none"
    assert "deprecationMessage" in action["inputs"]["profile"], "the old input still works"
    assert action["runs"]["using"] == "composite"
    step_ids = {step.get("id") for step in action["runs"]["steps"]}
    for output in action["outputs"].values():
        assert output["value"].startswith("${{ steps.build.outputs.") and "build" in step_ids


def test_fleet_shares_a_registry_and_rebuilds_elsewhere() -> None:
    fleet = _load(FLEET)
    assert fleet["permissions"]["packages"] == "write"
    assert fleet["env"]["PUSHING"] == "${{ github.event_name == 'push' }}", "pull requests only pull"
    jobs = fleet["jobs"]
    assert jobs["iso"]["needs"] == "images" and len(jobs["iso"]["strategy"]["matrix"]["include"]) >= 3
    iso_runs = "\n".join(_runs(jobs["iso"]["steps"]))
    for variable in ("LIVEORCH_IMAGES", "LIVEORCH_CACHE", "LIVEORCH_CACHE_PUSH"):
        assert variable in iso_runs
    assert "liveorch images push" in "\n".join(_runs(jobs["images"]["steps"]))
    assert jobs["rebuild"]["needs"] == "iso" and jobs["rebuild"]["runs-on"] != jobs["iso"]["runs-on"]
    assert any("liveorch rebuild" in run for run in _runs(jobs["rebuild"]["steps"]))


@pytest.mark.parametrize("path", [WORKFLOW, FLEET, EXAMPLE, ACTION])
def test_shell_steps_take_values_from_env_and_parse(path: Path, tmp_path: Path) -> None:
    data = _load(path)
    steps = data["runs"]["steps"] if "runs" in data else [s for job in data["jobs"].values() for s in job["steps"]]
    for number, run in enumerate(_runs(steps)):
        assert "${{" not in run, f"an expression pasted into a shell script: {run!r}"
        script = tmp_path / f"step{number}.sh"
        script.write_text(run)
        assert subprocess.run(["bash", "-n", script]).returncode == 0, run
