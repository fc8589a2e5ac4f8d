"""`liveorch validate` through typer's CliRunner: no engine, no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app
from liveorch.orchestrator.errors import DescriptionError


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_example(runner: CliRunner, example_config: Path, line) -> None:
    result = runner.invoke(app, ["validate", str(example_config)])
    assert result.exit_code == 0, result.output
    assert "bookworm-live.x86_64-1.0.0.iso" in result.stdout
    assert f"{example_config}: ok:" in result.stdout
    assert "13 packages requested" in result.stdout
    # The example's only note: the plan adds locales for its en_US, as for a zone it adds tzdata.
    notes = [ln for ln in result.stdout.splitlines() if "note:" in ln]
    assert notes == [f"note: <locale>en_US</locale> ({example_config}:{line(example_config, '<locale>')}): added "
                     "locales, whose definitions the rootfs stage compiles with localedef"]
    assert "warning:" not in result.stdout
    assert result.stderr == ""


def test_validate_directory(runner: CliRunner, example_config: Path) -> None:
    result = runner.invoke(app, ["validate", str(example_config.parent)])
    assert result.exit_code == 0, result.output
    assert "bookworm-live.x86_64-1.0.0.iso" in result.stdout


def test_validate_broken_description(runner: CliRunner, write_description, line) -> None:
    path = write_description(type='<type image="iso" volid="NO/SLASHES"/>')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"liveorch: error: {path}:{line(path, '<type ')}: volid=" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_validate_malformed_xml(runner: CliRunner, write_description) -> None:
    path = write_description(text='<?xml version="1.0"?>\n<image name="x">\n  <preferences>\n</image>\n')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: malformed XML" in result.stderr
    assert "Traceback" not in result.output


def test_validate_prints_the_hint(runner: CliRunner, write_description) -> None:
    path = write_description(repositories='<repository type="apt-deb">\n'
                                          '        <source path="obs://Debian:12/standard"/>\n    </repository>')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "  replace it with --set-repo or --add-repo" in result.stderr.splitlines()


# A real SHA-512-crypt hash: pwdformat="encrypted" (the default) passwords must be crypt(3) hashes.
OTHER_HASH = "$6$saltsalt$r4j7z8gOqxO9zYH/VSQ4MPgAu/GTg0.tIK5o0K3dXowoILt/JRmXmiqFa26mKioMH3Fwhg6qaU0XTibPpoJ8z."


def test_validate_with_profile_and_notes(runner: CliRunner, corpus: Path) -> None:
    path = corpus / "profiles" / "config.xml"
    result = runner.invoke(app, ["validate", "--profile", "Other", str(path)])
    assert result.exit_code == 0, result.output
    assert "profiled-live.x86_64-2.1.0.iso" in result.stdout
    assert "flags=overlay, firmware=bios" in result.stdout
    assert 'note: flags="overlay"' in result.stdout
    assert "warning:" not in result.stdout


def test_validate_refuses_a_password_that_is_not_a_hash(runner: CliRunner, write_description) -> None:
    users = '<user name="other" password="$6$salt$hash" home="/home/other"/>'
    path = write_description(extra=f"    <users>\n        {users}\n    </users>\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if 'name="other"' in text)
    assert (f"liveorch: error: {path}:{line}: user 'other': the password is not a crypt(3) hash; "
            'give pwdformat="plain" for a plain password') in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    hashed = write_description(extra=f'    <users>\n        {users.replace("$6$salt$hash", OTHER_HASH)}\n'
                                     "    </users>\n")
    assert runner.invoke(app, ["validate", str(hashed)]).exit_code == 0


def test_validate_warns_about_repositories_without_signature_checks(runner: CliRunner, write_description,
                                                                    tmp_path: Path, line) -> None:
    repositories = f"""<repository type="apt-deb" alias="debian" distribution="bookworm" repository_gpgcheck="false">
        <source path="http://deb.debian.org/debian"/>
    </repository>
    <repository type="apt-deb" alias="local" distribution="stable">
        <source path="file://{tmp_path}/repo"/>
    </repository>
    <repository type="apt-deb" alias="signed" distribution="bookworm-security">
        <source path="http://deb.debian.org/debian-security"/>
    </repository>"""
    path = write_description(repositories=repositories, extra="    <frobnicate/>\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    assert warnings == [
        "warning: repository 'debian' (http://deb.debian.org/debian) has repository_gpgcheck=\"false\": "
        "its packages are used without signature checks",
        f"warning: repository 'local' (file://{tmp_path}/repo) is a local file:// repository: "
        "its packages are used without signature checks",
    ]
    notes = [i for i, ln in enumerate(lines) if ": note: " in ln]
    assert notes, result.stdout
    assert lines[notes[0]] == f"{path}:{line(path, '<frobnicate')}: note: unknown element <frobnicate> ignored"
    # Warnings come first, then the notes, then the summary line.
    assert lines[:2] == warnings
    assert max(notes) < len(lines) - 1
    assert lines[-1].startswith(f"{path}: ok: ")
    assert result.stderr == ""


def test_validate_profile_needed(runner: CliRunner, corpus: Path) -> None:
    result = runner.invoke(app, ["validate", str(corpus / "profiles" / "config.xml")])
    assert result.exit_code == 2
    assert "--profile" in result.stderr
    assert "Traceback" not in result.output


def test_validate_unknown_profile(runner: CliRunner, example_config: Path) -> None:
    result = runner.invoke(app, ["validate", "-p", "Nope", str(example_config)])
    assert result.exit_code == 2
    assert "unknown profile 'Nope'" in result.stderr


def test_validate_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.xml")])
    assert result.exit_code == 2
    assert "no such description file" in result.stderr


def test_debug_shows_the_exception(runner: CliRunner, write_description) -> None:
    path = write_description(packagemanager="zypper")
    result = runner.invoke(app, ["--debug", "validate", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DescriptionError)
    # --debug must not stick to later invocations
    again = runner.invoke(app, ["validate", str(path)])
    assert again.exit_code == 2
    assert not isinstance(again.exception, DescriptionError)
