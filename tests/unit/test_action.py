"""The GitHub Action's promises, checked without GitHub: every input reaches a step, every
output is set, the options it passes exist in the real CLI's help, its argument-building bash
runs as written (a fake `liveorch` records what it was given), the outputs come from the
newest report.json, and the README gives one caching recipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
EXAMPLE = REPO / ".github" / "workflows" / "example-live-iso.yml"
FAKE = """#!/usr/bin/env bash
printf '%s\\n' "$@" >"$RUNNER_TEMP/$1.args"
[ "$1" = run ] || exit 0
target=$(grep -A1 -x -- --target-dir "$RUNNER_TEMP/run.args" | tail -1)
mkdir -p "$target"
echo '{"iso": {"name": "x.x86_64-1.iso", "sha256": "ab12"},
 "stages": [{"stage": "resolve", "cached": false}, {"stage": "rootfs", "cached": true}]}' \
 >"$target/x.x86_64-1.report.json"
touch "$target/x.x86_64-1.20260101T000000Z.log" "$target/x.x86_64-1.bios-cd.serial.log"
"""


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def _step(name_or_id: str) -> dict[str, Any]:
    return next(s for s in _action()["runs"]["steps"] if name_or_id in (s.get("id"), s.get("name")))


def _help(command: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "liveorch", command, "--help"], capture_output=True, text=True,
                          env=env, check=True).stdout


def _run_step(step: dict[str, Any], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The step's bash as GitHub runs it (bash -e -o pipefail), its `${{ }}` env replaced by `env`."""
    venv = tmp_path / "liveorch-venv" / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    (venv / "liveorch").write_text(FAKE)
    (venv / "liveorch").chmod(0o755)
    if not (venv / "python").exists():
        (venv / "python").symlink_to(sys.executable)
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    full = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "ACTION_PATH": str(REPO),
            "GITHUB_OUTPUT": str(tmp_path / "output"), **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], cwd=tmp_path,
                          env=full, capture_output=True, text=True)


def test_every_input_reaches_a_step_and_every_output_is_set() -> None:
    action = _action()
    text = ACTION.read_text()
    for name in action["inputs"]:
        assert f"inputs.{name} " in text or f"inputs.{name}\n" in text or f"inputs.{name}}}" in text, name
    assert {"description", "profiles", "set-repo", "add-repo", "set-type-attr", "boot-test", "test-commands",
            "cache", "cache-push", "strict", "extra-args"} <= set(action["inputs"])
    assert {"iso", "sha256", "report", "sbom", "log"} <= set(action["outputs"])
    outputs_script = (REPO / "scripts" / "action-outputs.py").read_text()
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.build.outputs.{name} }}}}"
        assert f'"{name}":' in outputs_script, name


def test_build_step_passes_every_input_as_an_option_the_cli_has(tmp_path: Path) -> None:
    env = {"DESCRIPTION": "desc", "PROFILES": "Live,efi  Extra", "SET_REPO": "http://m/debian,apt-deb,main",
           "ADD_REPO": "http://a/one,apt-deb\n\nhttp://a/two two,apt-deb\n", "SET_TYPE_ATTR": "timeout=1\n",
           "TARGET": "out dir", "STRICT": "true", "EXTRA_ARGS": "--fast  --add-package vim", "CACHE": "ghcr.io/o/c",
           "CACHE_PUSH": "true", "IMAGES": "ghcr.io/o", "BOOT_TEST": "both"}
    done = _run_step(_step("build"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "run.args").read_text().splitlines()
    assert args == ["run", "desc", "--target-dir", "out dir", "--progress", "plain", "--profile", "Live",
                    "--profile", "efi", "--profile", "Extra", "--set-repo", "http://m/debian,apt-deb,main",
                    "--add-repo", "http://a/one,apt-deb", "--add-repo", "http://a/two two,apt-deb",
                    "--set-type-attr", "timeout=1", "--strict", "--cache", "ghcr.io/o/c", "--cache-push",
                    "--images", "ghcr.io/o", "--fast", "--add-package", "vim"]
    help_text = _help("run")
    for option in {a for a in args if a.startswith("--")}:
        assert re.search(rf"{option}\b", help_text), option
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    assert outputs["iso"] == "out dir/x.x86_64-1.iso" and outputs["sha256"] == "ab12"
    assert outputs["sbom"] == "out dir/x.x86_64-1.spdx.json" and outputs["built"] == "resolve"
    assert outputs["log"] == "out dir/x.x86_64-1.20260101T000000Z.log"


def test_build_step_defaults_and_a_bad_boot_test(tmp_path: Path) -> None:
    env = {"DESCRIPTION": "d", "PROFILES": " ", "TARGET": "out", "STRICT": "false", "CACHE": "actions",
           "CACHE_PUSH": "true", "BOOT_TEST": "none"}
    assert _run_step(_step("build"), env, tmp_path).returncode == 0
    assert (tmp_path / "run.args").read_text().split() == ["run", "d", "--target-dir", "out", "--progress", "plain"]
    bad = _run_step(_step("build"), {**env, "BOOT_TEST": "yes"}, tmp_path)
    assert bad.returncode == 2 and "boot-test must be" in bad.stdout


def test_boot_test_step_uses_options_the_cli_has(tmp_path: Path) -> None:
    env = {"ISO": "out/x.iso", "BOOT_TEST": "uefi", "COMMANDS": "findmnt -n /\n\nsystemctl --failed\n",
           "TEST_USER": "demo", "TEST_PASSWORD": "s3cret"}
    done = _run_step(_step("Boot test"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "test.args").read_text().splitlines()
    assert args[:6] == ["test", "out/x.iso", "--uefi", "--usb", "--user", "demo"]
    assert args[6:10] == ["--command", "findmnt -n /", "--command", "systemctl --failed"]
    assert "s3cret" not in args and "::add-mask::s3cret" in done.stdout
    help_text = _help("test")
    for option in {a for a in args if a.startswith("--")} | {"--kvm"}:
        assert re.search(rf"{option}\b", help_text), option


def test_outputs_name_the_newest_report(tmp_path: Path) -> None:
    old = tmp_path / "old.x86_64-1.report.json"
    old.write_text("{}")
    os.utime(old, (1, 1))
    (tmp_path / "new.x86_64-2.report.json").write_text(json.dumps(
        {"iso": {"name": "new.x86_64-2.iso", "sha256": "cd"}, "stages": [{"stage": "iso", "cached": False}]}))
    printed = subprocess.run([sys.executable, REPO / "scripts" / "action-outputs.py", tmp_path, str(time.time() - 60)],
                             capture_output=True, text=True, check=True).stdout
    assert f"report={tmp_path}/new.x86_64-2.report.json" in printed and "built=iso" in printed
    late = subprocess.run([sys.executable, REPO / "scripts" / "action-outputs.py", tmp_path, str(time.time() + 60)],
                          capture_output=True, text=True)
    assert late.returncode != 0 and "no report.json" in late.stderr


def test_cache_steps_agree_and_save_only_after_new_work() -> None:
    steps = _action()["runs"]["steps"]
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore@"))
    save = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"] and restore["with"]["key"] == save["with"]["key"]
    assert "steps.build.outputs.built != 'resolve'" in _step("cache-save")["if"]
    assert "actions-cache.sh\" load" in _step("Load the stage cache into Docker")["run"]


def test_readme_gives_one_caching_recipe_and_the_example_workflow_uses_the_action() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.count("scripts/actions-cache.sh save") == 1
    assert "tar -C /a" not in readme and "<owner>" not in readme
    assert ".github/workflows/example-live-iso.yml" in readme
    (job,) = yaml.safe_load(EXAMPLE.read_text())["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    (step,) = [s for s in job["steps"] if s.get("uses") == "./"]
    assert step["with"]["description"] == "examples/bookworm-live" and step["with"]["cache"] == "actions"
    assert step["with"]["boot-test"] == "both"
    assert set(step["with"]) <= set(_action()["inputs"])
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert "${{ steps.iso.outputs.iso }}" in uploads[0]["with"]["path"]
