"""Every exit code README.md's table names, triggered through the real CLI without a container
engine: engine problems through a socket that does not exist, interruption through real signals
to a running `serve-pxe`. A stage failure (4) needs a running stage: here the CLI maps the error a
failed stage raises; tests/e2e/test_faults.py (test_a_stage_killed_from_outside_is_named, and the
hook timeout cases) sees 4 from real stages."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator import cli, errors, repro
from liveorch.orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
NO_ENGINE = "unix:///nonexistent/liveorch-test.sock"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _readme_codes() -> dict[int, str]:
    """The exit-code table in README.md: | code | meaning |."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("Exit codes ("):]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", table[:4000], re.M)}


def test_the_readme_table_names_every_code_the_errors_use() -> None:
    codes = _readme_codes()
    assert set(codes) == {0, 1, 2, 3, 4, 5, 130}
    classes = {errors.CheckFailed: 1, errors.LiveorchError: 1, errors.UsageError: 2, errors.DescriptionError: 2,
               errors.SpecError: 2, errors.EngineError: 3, errors.ImageBuildError: 3, errors.StageFailed: 4,
               errors.TargetError: 5, errors.LockError: 5, errors.Interrupted: 130}
    for error_class, code in classes.items():
        assert error_class.exit_code == code, error_class
    assert "stage failed" in codes[4] and "engine" in codes[3] and "interrupted" in codes[130]


def test_0_success(tmp_path: Path) -> None:
    code, output = _invoke("validate", str(EXAMPLE))
    assert code == 0, output
    assert _invoke("--version")[0] == 0


def test_1_verify_repro_found_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    differs = repro.ReproReport(identical=False, first_difference="squashfs", differing_files=["root.squashfs"],
                                sha256=("a" * 64, "b" * 64))
    monkeypatch.setattr(repro, "verify_reproducible", lambda *args: differs)
    code, output = _invoke("verify-repro", str(EXAMPLE))
    assert code == 1, output
    assert "NOT reproducible" in output


def test_1_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def boot_failed(*args: object) -> None:
        raise errors.CheckFailed("no login prompt within 600 s")

    monkeypatch.setattr(cli, "run_build", boot_failed)
    code, output = _invoke("run", str(EXAMPLE), "--progress", "plain")
    assert code == 1, output
    assert "liveorch: error: no login prompt" in output


@pytest.mark.parametrize("args", [
    ["run", str(EXAMPLE), "--progress", "fancy"],
    ["run", str(EXAMPLE), "--no-such-option"],
    ["run", str(EXAMPLE), "--memory", "1x"],
    ["run", str(EXAMPLE), "--pxe-url", "tftp://host/"],
    ["run", str(EXAMPLE), "--set-repo", "http://x,no-such-type"],
    ["run"],
    ["images"],
    ["test", "/nonexistent/x.iso"],
], ids=["progress-fancy", "unknown-option", "bad-memory", "bad-pxe-url", "bad-spec", "no-config", "no-verb",
        "no-iso"])
def test_2_bad_option(args: list[str], tmp_path: Path) -> None:
    code, output = _invoke(*args, *(["--target-dir", str(tmp_path / "out")] if args[0] == "run" and
                                    len(args) > 1 else []))
    assert code == 2, output
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists(), "a usage error stops before anything is made"


def test_2_bad_description(tmp_path: Path) -> None:
    broken = tmp_path / "config.xml"
    broken.write_text("<image schemaversion='7.4' name='x'><description>")
    for verb in ("validate", "run"):
        code, output = _invoke(verb, str(broken))
        assert code == 2, output
        assert "liveorch: error: " in output


def test_2_serve_pxe_without_a_bundle(tmp_path: Path) -> None:
    code, output = _invoke("serve-pxe", str(tmp_path))
    assert code == 2, output
    assert "expected one network-boot bundle" in output


@pytest.mark.parametrize("args", [
    ["run", str(EXAMPLE), "--engine-host", NO_ENGINE],
    ["images", "ls", "--engine-host", NO_ENGINE],
    ["cache", "ls", "--engine-host", NO_ENGINE],
], ids=["run", "images-ls", "cache-ls"])
def test_3_engine_not_reachable(args: list[str], tmp_path: Path) -> None:
    code, output = _invoke(*args, *(["--target-dir", str(tmp_path / "out")] if args[0] == "run" else []))
    assert code == 3, output
    assert output.count("liveorch: error: ") == 1 and "Traceback" not in output


def test_4_a_stage_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def stage_failed(*args: object) -> None:
        raise errors.StageFailed("the rootfs stage failed: E: Unable to locate package vim-nox",
                                 hint="full log: out/x.log")

    monkeypatch.setattr(cli, "run_build", stage_failed)
    code, output = _invoke("run", str(EXAMPLE), "--target-dir", str(tmp_path / "out"))
    assert code == 4, output
    assert "liveorch: error: the rootfs stage failed" in output and "  full log: out/x.log" in output


def test_5_target_directory_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a directory")
    code, output = _invoke("run", str(EXAMPLE), "--target-dir", str(tmp_path / "out"), "--engine-host", NO_ENGINE)
    assert code == 5, output
    assert "target directory" in output


def test_5_lock_missing(tmp_path: Path) -> None:
    code, output = _invoke("run", str(EXAMPLE), "--lock", str(tmp_path / "none.lock"), "--target-dir",
                           str(tmp_path / "out"), "--engine-host", NO_ENGINE)
    assert code == 5, output
    assert "no such lock file" in output


def test_5_init_into_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    code, output = _invoke("init", str(tmp_path / "d"))
    assert code == 5, output


def test_130_interrupted_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_build", interrupted)
    code, output = _invoke("run", str(EXAMPLE), "--target-dir", str(tmp_path / "out"))
    assert code == 130, output
    assert "liveorch: interrupted" in output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_130_a_real_signal(sig: signal.Signals, tmp_path: Path) -> None:
    """`serve-pxe` runs until stopped: the very signals a user sends end it with 130."""
    bundle = tmp_path / "x.pxe"
    bundle.mkdir()
    (bundle / "boot.ipxe").write_text("#!ipxe\n")
    process = subprocess.Popen([sys.executable, "-m", "liveorch", "serve-pxe", str(tmp_path), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "serving" in (process.stdout.readline() if process.stdout else "")
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "liveorch: interrupted" in err and "Traceback" not in err
