"""Whatever escapes a verb reaches the user as one line with the documented exit code."""

from __future__ import annotations

import errno
from pathlib import Path

import docker.errors
import pytest
import requests
from typer.testing import CliRunner

from liveorch.orchestrator import cli
from liveorch.orchestrator.cli import app


@pytest.mark.parametrize(("error", "code", "line"), [
    (docker.errors.APIError("500 Server Error", explanation="container name in use"), 3,
     "the container engine refused: container name in use"),
    (requests.exceptions.ConnectionError("Connection aborted"), 3, "the connection to the container engine broke off"),
    (requests.exceptions.ReadTimeout("read timed out"), 3, "the container engine did not answer in time"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300), 2, "a name is too long"),
    (OSError(errno.EACCES, "Permission denied", "/etc/x"), 1, "Permission denied: /etc/x"),
    (RuntimeError("boom"), 1, "unexpected error: RuntimeError: boom"),
])
def test_escaped_errors_become_one_line(error: Exception, code: int, line: str, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_debug", False)

    def failing() -> None:
        raise error

    with pytest.raises(cli.typer.Exit) as stopped:
        cli._guarded(failing)
    assert stopped.value.exit_code == code
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f"liveorch: error: {line}")
    assert all(hint.startswith("  ") for hint in err.splitlines()[1:]), "one line, then indented hints"
    assert "Traceback" not in err


def test_an_over_long_description_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / ("x" * 300) / "config.xml")])
    assert result.exit_code == 2, result.output
    assert result.output.count("liveorch: error:") == 1 and "Traceback" not in result.output


def test_sighup_is_handled_like_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    installed: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.setdefault(sig, handler))
    cli._guarded(lambda: None)
    assert installed[signal.SIGHUP] is installed[signal.SIGTERM] is cli._signal_as_interrupt
    with pytest.raises(KeyboardInterrupt):
        cli._signal_as_interrupt(signal.SIGHUP, None)
