"""`validate` finds what would fail later: one broken description per check, each giving one
line FILE:LINE: error|note: ... (fix: ...), and `--strict` refusing notes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import make_plan

NO_INIT = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut"/>
    </packages>"""
NO_KERNEL = """<packages type="image">
        <package name="systemd-sysv"/>
    </packages>"""
# A <type> over several lines: a message must point at the attribute's own line.
MULTILINE_TYPE = """<type image="iso" primary="true"
              flags="dmsquash"
              firmware="efi"
              squashfscompression="{compression}"
              volid="UNIT_LIVE">
            <bootloader name="grub2" console="serial"
                        {timeout}/>
        </type>"""


def _validate(path: Path, *options: str) -> tuple[int, list[str], list[str]]:
    result = CliRunner().invoke(app, ["validate", str(path), *options])
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def _findings(lines: list[str], path: Path) -> list[str]:
    return [ln for ln in lines if ln.startswith(f"{path}:") and not ln.startswith(f"{path}: ok: ")]


def test_no_kernel_is_an_error_with_the_fix(write_description, line) -> None:
    path = write_description(packages=NO_KERNEL)
    code, out, err = _validate(path)
    assert code == 2
    assert err == [f"{path}:{line(path, '<packages ')}: error: no kernel: nothing asks for a linux-image-* package, "
                   "and the initrd stage needs the image's /boot/vmlinuz-* "
                   '(fix: <package name="linux-image-amd64"/>)']
    assert not any(": ok: " in ln for ln in out)


def test_no_init_is_a_note(write_description, line) -> None:
    path = write_description(packages=NO_INIT)
    code, out, err = _validate(path)
    assert code == 0, err
    assert _findings(out, path) == [
        f"{path}:{line(path, '<packages ')}: note: no init: no package asks for /sbin/init, so the live system stops "
        "in the initrd unless a dependency brings one (fix: <package name=\"systemd-sysv\"/>)"]


@pytest.mark.parametrize(("users", "what"), [
    ("", "no <users>"),
    ('<users>\n        <user name="tux" home="/home/tux"/>\n    </users>', "no user has a password"),
])
def test_no_login_is_a_note(write_description, line, users: str, what: str) -> None:
    text = write_description().read_text()
    start = text.index("    <users>")
    end = text.index("</users>") + len("</users>")
    path = write_description(text=text[:start] + "    " + users + text[end:])
    code, out, _ = _validate(path)
    assert code == 0
    where = line(path, "<users>") if users else line(path, "<image ")
    assert _findings(out, path) == [f"{path}:{where}: note: {what}: the image builds and boots, but nobody can log "
                                    'in on its consoles (fix: <users><user name="root" password="..." '
                                    'pwdformat="plain" home="/root"/></users>)']


def _preferences(write_description, setting: str, packages: str = "") -> Path:
    extra_packages = "".join(f'\n        <package name="{name}"/>' for name in packages.split())
    return write_description(type=f"{setting}\n        " + MULTILINE_TYPE.format(compression="xz", timeout=""),
                             packages=f'<packages type="image">\n        <package name="linux-image-amd64"/>\n'
                                      f'        <package name="systemd-sysv"/>{extra_packages}\n    </packages>')


def test_a_locale_without_locale_data_is_a_note(write_description, line) -> None:
    path = _preferences(write_description, "<locale>de_DE</locale>")
    code, out, _ = _validate(path)
    assert code == 0
    assert _findings(out, path) == [f"{path}:{line(path, '<locale>')}: note: locale 'de_DE' without locale data: "
                                    'programs fall back to C (ASCII) (fix: <package name="locales-all"/>, or '
                                    '"locales" and locale-gen in config.sh)']


@pytest.mark.parametrize(("setting", "packages"), [
    ("<locale>C.UTF-8</locale>", ""), ("<locale>POSIX</locale>", ""), ("<locale>de_DE</locale>", "locales-all"),
    ("<locale>de_DE</locale>", "locales"), ("<keytable>us</keytable>", ""), ("<keytable>de</keytable>", "kbd"),
    ("<keytable>de</keytable>", "keyboard-configuration"), ("<timezone>UTC</timezone>", ""),
])
def test_settings_that_need_nothing_more(write_description, setting: str, packages: str) -> None:
    path = _preferences(write_description, setting, packages)
    code, out, _ = _validate(path, "--strict")
    assert code == 0, out
    assert _findings(out, path) == []


def test_a_keytable_without_keymaps_is_a_note(write_description, line) -> None:
    path = _preferences(write_description, "<keytable>de-latin1</keytable>")
    _, out, _ = _validate(path)
    assert _findings(out, path) == [f"{path}:{line(path, '<keytable>')}: note: keytable 'de-latin1' without loadkeys "
                                    "and keymaps: the console keeps the kernel's US layout (fix: "
                                    '<package name="kbd"/> and <package name="console-data"/>)']


def test_a_timezone_without_tzdata_gets_tzdata_with_a_note(write_description, line) -> None:
    path = _preferences(write_description, "<timezone>Europe/Berlin</timezone>")
    plan = make_plan(parse_description(path))
    assert "tzdata" in plan.options["resolve"].packages
    assert (f"<timezone>Europe/Berlin</timezone> ({path}:{line(path, '<timezone>')}): added tzdata, which ships "
            "/usr/share/zoneinfo (the rootfs stage links /etc/localtime there)") in plan.notes
    with_tzdata = make_plan(parse_description(_preferences(write_description, "<timezone>Europe/Berlin</timezone>",
                                                           "tzdata")))
    assert with_tzdata.options["resolve"].packages.count("tzdata") == 1
    assert not [n for n in with_tzdata.notes if "tzdata" in n]


def test_utc_needs_no_tzdata(write_description) -> None:
    plan = make_plan(parse_description(_preferences(write_description, "<timezone>Etc/UTC</timezone>")))
    assert "tzdata" not in plan.options["resolve"].packages


def test_typos_get_a_did_you_mean(write_description, line) -> None:
    path = write_description(type=MULTILINE_TYPE.format(compression="xz", timeout='timout="3"'),
                             extra="    <packges/>\n")
    _, out, _ = _validate(path)
    assert _findings(out, path) == [
        f"{path}:{line(path, 'timout=')}: note: unknown attribute timout= on <bootloader> ignored "
        "(fix: did you mean timeout=?)",
        f"{path}:{line(path, '<packges')}: note: unknown element <packges> ignored (fix: did you mean <packages>?)",
    ]


def test_strict_turns_notes_into_errors(write_description, line) -> None:
    path = write_description(type=MULTILINE_TYPE.format(compression="xz", timeout='timout="3"'))
    assert _validate(path)[0] == 0
    code, out, err = _validate(path, "--strict")
    assert code == 2
    assert err == [f"{path}:{line(path, 'timout=')}: error: unknown attribute timout= on <bootloader> ignored "
                   "(fix: did you mean timeout=?)"]
    assert not any(": ok: " in ln for ln in out)


def test_run_strict_stops_before_anything_runs(write_description, line) -> None:
    path = write_description(packages=NO_INIT)
    result = CliRunner().invoke(app, ["run", str(path), "--strict", "--engine-host", "unix:///nonexistent"])
    assert result.exit_code == 2, result.output
    assert f"liveorch: error: {path}:{line(path, '<packages ')}: no init: " in result.stderr


def test_errors_point_at_the_attributes_own_line(write_description, line) -> None:
    path = write_description(type=MULTILINE_TYPE.format(compression="brotli", timeout=""))
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    assert str(caught.value).startswith(f"{path}:{line(path, 'squashfscompression=')}: squashfscompression='brotli'")
    path = write_description(type=MULTILINE_TYPE.format(compression="xz", timeout='timeout="soon"'))
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    assert str(caught.value).startswith(f"{path}:{line(path, 'timeout=')}: timeout='soon' is not a number")


def test_override_notes_and_errors_name_the_override(write_description) -> None:
    path = write_description()
    description = parse_description(path, overrides=Overrides(type_attrs=["volidd=X"]))
    assert description.warnings == ["--set-type-attr volidd=X: unknown attribute volidd= on <type> ignored "
                                    "(fix: did you mean volid=?)"]
    with pytest.raises(DescriptionError) as caught:
        parse_description(path, overrides=Overrides(type_attrs=["firmware=coreboot"]))
    assert str(caught.value).startswith("--set-type-attr firmware=coreboot: firmware='coreboot' must be one of")
    code, out, _ = _validate(path, "--set-type-attr", "volidd=X")
    assert code == 0
    assert "--set-type-attr volidd=X: note: unknown attribute volidd= on <type> ignored (fix: did you mean volid=?)" \
        in out
