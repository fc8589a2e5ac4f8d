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
from liveorch.stages.contracts.rootfs import GeneratedLocale

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


LOCALES_NOTE = "added locales, whose definitions the rootfs stage compiles with localedef"


def _setting_notes(notes: list[str]) -> list[str]:
    """The plan's notes about <timezone>, <locale> and <keytable> (not the dracut it adds too)."""
    return [note for note in notes if note.startswith(("<timezone>", "<locale>", "<keytable>"))]


def test_a_locale_gets_locales_with_a_note_and_is_compiled(write_description, line) -> None:
    path = _preferences(write_description, "<locale>de_DE</locale>")
    code, out, _ = _validate(path, "--strict")
    assert code == 0, out  # what the plan adds is no problem of the description's
    assert _findings(out, path) == []
    assert f"note: <locale>de_DE</locale> ({path}:{line(path, '<locale>')}): {LOCALES_NOTE}" in out
    plan = make_plan(parse_description(path))
    assert plan.options["resolve"].packages.count("locales") == 1
    assert plan.options["rootfs"].generate_locales == (GeneratedLocale("de_DE.UTF-8", "de_DE", "UTF-8"),)


def test_kiwis_locale_list_is_compiled_in_order_once_each(write_description) -> None:
    path = _preferences(write_description, "<locale>en_US, de_DE@euro,C.UTF-8,en_US.utf8,fr_FR.iso-8859-1</locale>",
                        "locales")
    plan = make_plan(parse_description(path))
    assert plan.options["rootfs"].generate_locales == (
        GeneratedLocale("en_US.UTF-8", "en_US", "UTF-8"), GeneratedLocale("de_DE.UTF-8@euro", "de_DE@euro", "UTF-8"),
        GeneratedLocale("fr_FR.ISO-8859-1", "fr_FR", "ISO-8859-1"))
    assert _setting_notes(plan.notes) == []


def test_with_locales_all_nothing_is_compiled_or_added(write_description) -> None:
    plan = make_plan(parse_description(_preferences(write_description, "<locale>de_DE</locale>", "locales-all")))
    assert plan.options["rootfs"].generate_locales == ()
    assert "locales" not in plan.options["resolve"].packages


def test_a_locale_that_is_no_locale_name_is_an_error(write_description, line) -> None:
    path = _preferences(write_description, "<locale>en_US,../../etc/x</locale>")
    code, _, err = _validate(path)
    assert code == 2
    assert f"{path}:{line(path, '<locale>')}: <locale>: '../../etc/x' is not a locale name" in err[0]


@pytest.mark.parametrize(("setting", "packages"), [
    ("<locale>C.UTF-8</locale>", ""), ("<locale>POSIX</locale>", ""), ("<locale>de_DE</locale>", "locales-all"),
    ("<locale>de_DE</locale>", "locales"), ("<keytable>us</keytable>", ""),
    ("<keytable>de</keytable>", "kbd console-data"), ("<timezone>UTC</timezone>", ""),
])
def test_settings_that_need_nothing_more(write_description, setting: str, packages: str) -> None:
    path = _preferences(write_description, setting, packages)
    code, out, _ = _validate(path, "--strict")
    assert code == 0, out
    assert _findings(out, path) == []
    plan = make_plan(parse_description(path))
    assert _setting_notes(plan.notes) == []
    assert plan.options["resolve"].packages[2:] == (*packages.split(), "dracut", "dracut-live")


@pytest.mark.parametrize(("packages", "added"), [
    ("", ["kbd", "console-data"]), ("kbd", ["console-data"]), ("console-data", ["kbd"]),
    # Debian's own way compiles /etc/default/keyboard from XKB: no loadkeys keymap by name.
    ("console-setup keyboard-configuration", ["kbd", "console-data"]),
])
def test_a_keytable_gets_loadkeys_and_keymaps_with_notes(write_description, line, packages: str,
                                                         added: list[str]) -> None:
    path = _preferences(write_description, "<keytable>de-latin1</keytable>", packages)
    plan = make_plan(parse_description(path))
    reasons = {"kbd": "whose loadkeys systemd-vconsole-setup runs with KEYMAP= from /etc/vconsole.conf",
               "console-data": "which ships the keymaps loadkeys reads (/usr/share/keymaps)"}
    where = f"{path}:{line(path, '<keytable>')}"
    assert _setting_notes(plan.notes) == [f"<keytable>de-latin1</keytable> ({where}): added {name}, {reasons[name]}"
                                          for name in added]
    assert plan.options["resolve"].packages[-len(added):] == tuple(added)


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


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/Europe/Berlin").exists(), reason="the host has no tzdata")
def test_an_unknown_timezone_is_an_error_with_a_did_you_mean(write_description, line) -> None:
    path = _preferences(write_description, "<timezone>Europe/Berln</timezone>")
    code, _, err = _validate(path)
    assert code == 2
    assert err == [f"{path}:{line(path, '<timezone>')}: error: unknown time zone 'Europe/Berln': the rootfs stage "
                   "could not link /etc/localtime to it (fix: did you mean <timezone>Europe/Berlin</timezone>?)"]


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
