"""KIWI's /.profile and /.kconfig for config.sh and images.sh (the pure parts of stages/hooks.py),
and the profile variables make_plan hands to the rootfs stage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import KIWI_ARCH, make_plan
from liveorch.stages.hooks import KCONFIG, write_profile

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTILE = """it's a "name" with spaces $(touch pwned) `touch pwned2` $HOME ${PATH} \\ ; rm -rf ./victim &"""
KCONFIG_FUNCTIONS = ("Debug", "Echo", "baseInsertService", "baseRemoveService", "baseService", "baseSetRunlevel",
                     "suseInsertService", "suseRemoveService", "suseService", "suseActivateDefaultServices",
                     "baseCleanMount", "suseConfig", "baseStripDocs", "baseStripLocales", "baseUpdateSysConfig")

PROFILES = """    <profiles>
        <profile name="Live" description="the live ISO"/>
        <profile name="Extra" description="more packages"/>
        <profile name="Default" description="imported" import="true"/>
    </profiles>
"""


def bash(directory: Path, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, "-c", script], cwd=directory, capture_output=True, text=True, timeout=10,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"}, check=check)


# --- /.profile ----------------------------------------------------------------------------------


def test_profile_is_written_sorted_and_quoted(tmp_path: Path) -> None:
    write_profile(tmp_path, {"kiwi_type": "iso", "kiwi_iname": "plain-name", "kiwi_profiles": ""})
    assert (tmp_path / ".profile").read_text() == "kiwi_iname=plain-name\nkiwi_profiles=''\nkiwi_type=iso\n"
    assert (tmp_path / ".kconfig").read_text() == KCONFIG


def test_profile_value_is_sourced_literally_without_substitution(tmp_path: Path) -> None:
    (tmp_path / "victim").mkdir()
    write_profile(tmp_path, {"kiwi_iname": HOSTILE, "kiwi_iversion": "1.0"})
    result = bash(tmp_path, '. ./.profile; printf "%s" "$kiwi_iname"')
    assert result.stdout == HOSTILE
    assert result.stderr == ""
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()
    assert (tmp_path / "victim").is_dir()


def test_profile_with_echo_as_in_the_brief(tmp_path: Path) -> None:
    value = "My \"Live\" 'System' $(id -u)"
    write_profile(tmp_path, {"kiwi_iname": value})
    result = bash(tmp_path, '. ./.profile; echo "$kiwi_iname"')
    assert result.stdout == value + "\n"


@pytest.mark.parametrize("value", ["", "multi\nline\nvalue", "tab\there", "ünïcödé", "-n", "*", "a=b", "'", '"'])
def test_awkward_values_round_trip(tmp_path: Path, value: str) -> None:
    write_profile(tmp_path, {"kiwi_displayname": value})
    result = bash(tmp_path, '. ./.profile; printf "%s" "$kiwi_displayname"')
    assert result.stdout == value


def test_non_string_values_are_written_as_text(tmp_path: Path) -> None:
    write_profile(tmp_path, {"kiwi_number": 42, "kiwi_flag": True})  # type: ignore[dict-item]
    result = bash(tmp_path, '. ./.profile; echo "$kiwi_number $kiwi_flag"')
    assert result.stdout == "42 True\n"


def test_profile_sourced_under_set_euo_pipefail(tmp_path: Path) -> None:
    write_profile(tmp_path, {"kiwi_iname": "x", "kiwi_profiles": ""})
    result = bash(tmp_path, 'set -euo pipefail; . ./.profile; . ./.kconfig; Debug quiet; echo "[$kiwi_profiles]"')
    assert result.stdout == "[]\n"


# --- /.kconfig ----------------------------------------------------------------------------------


def test_kconfig_is_valid_bash(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    assert bash(tmp_path, "bash -n ./.kconfig").returncode == 0


@pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs /bin/sh")
def test_kconfig_parses_in_posix_sh(tmp_path: Path) -> None:
    # config.sh may be a #!/bin/sh script sourcing /.kconfig.
    write_profile(tmp_path, {})
    result = subprocess.run(["/bin/sh", "-n", "./.kconfig"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 0, result.stderr


def test_kconfig_defines_the_kiwi_helpers(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    result = bash(tmp_path, ". ./.kconfig; type baseSetRunlevel")
    assert result.stdout.startswith("baseSetRunlevel is a function\n")
    result = bash(tmp_path, ". ./.kconfig; for f in " + " ".join(KCONFIG_FUNCTIONS) + '; do type -t "$f"; done')
    assert result.stdout.split() == ["function"] * len(KCONFIG_FUNCTIONS)


def test_sourcing_kconfig_has_no_side_effects(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    result = bash(tmp_path, ". ./.kconfig")
    assert (result.stdout, result.stderr) == ("", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kconfig", ".profile"]


def test_kconfig_helpers_map_onto_systemctl(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    script = """set -euo pipefail
. ./.kconfig
systemctl() { echo "systemctl $*"; }
baseSetRunlevel 1
baseSetRunlevel 3
baseSetRunlevel 5
baseSetRunlevel graphical.target
baseInsertService hello.service
suseInsertService sshd
baseRemoveService cron
suseRemoveService atd
baseService on-svc on
baseService yes-svc yes
baseService off-svc off
suseService s2 on
"""
    assert bash(tmp_path, script).stdout.splitlines() == [
        "systemctl set-default rescue.target",
        "systemctl set-default multi-user.target",
        "systemctl set-default graphical.target",
        "systemctl set-default graphical.target",
        "systemctl enable hello.service",
        "systemctl enable sshd",
        "systemctl disable cron",
        "systemctl disable atd",
        "systemctl enable on-svc",
        "systemctl enable yes-svc",
        "systemctl disable off-svc",
        "systemctl enable s2",
    ]


def test_debug_and_echo(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    assert bash(tmp_path, ". ./.kconfig; Debug hidden; Echo shown  twice").stdout == "shown twice\n"
    assert bash(tmp_path, ". ./.kconfig; DEBUG=1 Debug visible").stdout == "+++++> visible\n"
    assert bash(tmp_path, "set -e; . ./.kconfig; Debug hidden; echo after").stdout == "after\n"


def test_no_op_helpers_succeed(tmp_path: Path) -> None:
    write_profile(tmp_path, {})
    result = bash(tmp_path, "set -e; . ./.kconfig; suseActivateDefaultServices; baseCleanMount; suseConfig; "
                            "baseUpdateSysConfig /etc/sysconfig/x Y z; echo ok")
    assert result.stdout == "ok\n"


def test_config_sh_of_the_example_runs_against_profile_and_kconfig(tmp_path: Path) -> None:
    """The example's config.sh, with / redirected to tmp_path and systemctl stubbed."""
    root = tmp_path
    (root / "etc" / "liveorch").mkdir(parents=True)
    write_profile(root, {"kiwi_iname": "kiwi-features", "kiwi_iversion": "2.1.0", "kiwi_profiles": "Live",
                         "kiwi_type": "iso"})
    script = (EXAMPLES / "kiwi-features" / "config.sh").read_text()
    script = script.replace("/.kconfig", "./.kconfig").replace("/.profile", "./.profile")
    script = script.replace("> /etc/", "> ./etc/")
    script = script.replace(". ./.kconfig\n", '. ./.kconfig\nsystemctl() { echo "systemctl $*"; }\n', 1)
    result = bash(root, script)
    assert result.stdout.splitlines() == [
        "configuring kiwi-features 2.1.0 (profiles: Live, type iso)",
        "systemctl enable liveorch-hello.service",
        "systemctl set-default multi-user.target",
    ]
    assert (root / "etc" / "liveorch" / "profile-seen").read_text() == "kiwi-features 2.1.0 Live iso\n"


# --- make_plan's profile variables --------------------------------------------------------------


def test_plan_profile_variables(write_description) -> None:
    description = parse_description(write_description(extra=PROFILES), profiles=("Live", "Extra"))
    profile = make_plan(description).options["rootfs"].profile
    assert profile["kiwi_iname"] == "unit-live"
    assert profile["kiwi_iversion"] == "1.2.3"
    assert profile["kiwi_displayname"] == "Unit test live"
    assert profile["kiwi_type"] == "iso"
    assert profile["kiwi_arch"] == KIWI_ARCH
    assert profile["kiwi_iso_volid"] == "UNIT_LIVE"
    selected = profile["kiwi_profiles"].split(",")
    assert sorted(selected) == ["Extra", "Live"]
    assert profile["kiwi_profiles"] == ",".join(description.profiles)
    assert all(isinstance(value, str) for value in profile.values())


def test_plan_profile_single_and_imported_profiles(write_description) -> None:
    path = write_description(extra=PROFILES)
    assert make_plan(parse_description(path, profiles=("Live",))).options["rootfs"].profile["kiwi_profiles"] \
        == "Live"
    # Without --profile, the import="true" profiles are the selected ones.
    assert make_plan(parse_description(path)).options["rootfs"].profile["kiwi_profiles"] == "Default"


def test_plan_profile_without_profiles(write_description) -> None:
    profile = make_plan(parse_description(write_description())).options["rootfs"].profile
    assert profile["kiwi_profiles"] == ""
    assert profile["kiwi_language"] == ""
    assert profile["kiwi_timezone"] == ""


def test_plan_profile_of_kiwi_features() -> None:
    description = parse_description(EXAMPLES / "kiwi-features", profiles=("Live",),
                                    overrides=Overrides(set_repo="http://deb.debian.org/debian"))
    profile = make_plan(description).options["rootfs"].profile
    assert {k: profile[k] for k in ("kiwi_iname", "kiwi_iversion", "kiwi_profiles", "kiwi_type")} == {
        "kiwi_iname": "kiwi-features", "kiwi_iversion": "2.1.0", "kiwi_profiles": "Live", "kiwi_type": "iso",
    }
    assert profile["kiwi_iso_volid"] == "KIWI_FEATURES"
    assert profile["kiwi_live_flags"] == "overlay"
    assert profile["kiwi_keytable"] == "de"
    assert profile["kiwi_timezone"] == "Europe/Berlin"
    assert profile["kiwi_language"] == "en_US"
    assert profile["kiwi_firmware"] == "efi"
    assert profile["kiwi_bootloader"] == "grub2"
    assert profile["kiwi_hybridpersistent"] == "true"


def test_plan_profile_volid_default_and_override(write_description) -> None:
    path = write_description(name="My_Live", type='<type image="iso"/>')
    assert make_plan(parse_description(path)).options["rootfs"].profile["kiwi_iso_volid"] == "MY_LIVE"
    overridden = parse_description(path, overrides=Overrides(type_attrs=["volid=CLI VOLID"]))
    plan = make_plan(overridden)
    assert plan.options["rootfs"].profile["kiwi_iso_volid"] == "CLI VOLID"
    assert plan.options["iso"].volid == "CLI VOLID"


def test_plan_profile_sources_in_bash(write_description, tmp_path: Path) -> None:
    path = write_description(displayname="Tux's &quot;live&quot; $(touch pwned)", extra=PROFILES)
    profile = make_plan(parse_description(path, profiles=("Live", "Extra"))).options["rootfs"].profile
    root = tmp_path / "root"
    root.mkdir()
    write_profile(root, profile)
    names = sorted(profile)
    result = bash(root, ". ./.profile; " + "; ".join(f'printf "%s\\0" "${name}"' for name in names))
    assert dict(zip(names, result.stdout.split("\0")[:-1], strict=True)) == profile
    assert profile["kiwi_displayname"] == "Tux's \"live\" $(touch pwned)"
    assert not (root / "pwned").exists()
