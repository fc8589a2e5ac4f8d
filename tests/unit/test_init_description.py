"""`liveorch init`: the description it writes validates, plans like the bundled example (which CI
builds and boots, so the template is bootable by construction), states the defaults it relies on,
and never holds a plain password. No engine, no network: init, parse and plan in tmp_path."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app
from liveorch.orchestrator.description import LiveType, parse_description
from liveorch.orchestrator.init_description import DEFAULT_PASSWORD, InitRequest, Suite, init_description
from liveorch.orchestrator.passwords import sha512_crypt
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.root_layout import DEFAULT_FILESYSTEM

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live"
SHA512_CRYPT = re.compile(r"\$6\$rounds=(\d+)\$([./0-9A-Za-z]{16})\$[./0-9A-Za-z]{86}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _plan(directory: Path) -> BuildPlan:
    return make_plan(parse_description(directory))


def _verifies(hashed: str, password: str) -> bool:
    """The hash is of this password: hashing it again with the same salt and rounds gives it back."""
    match = SHA512_CRYPT.fullmatch(hashed)
    assert match, hashed
    return sha512_crypt(password, match.group(2), int(match.group(1))) == hashed


def test_init_then_validate_says_ok(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "my-live"
    result = runner.invoke(app, ["init", str(target), "--user", "demo"])
    assert result.exit_code == 0, result.output
    assert f"wrote {target / 'config.xml'}: my-live, Debian bookworm" in result.stdout
    assert "logins: root and demo, password 'linux'" in result.stdout
    assert f"liveorch validate {target}" in result.stdout
    assert f"liveorch run {target} --target-dir out" in result.stdout
    assert "liveorch test out/my-live.x86_64-1.0.0.iso --user demo" in result.stdout
    validated = runner.invoke(app, ["validate", str(target)])
    assert validated.exit_code == 0, validated.output
    assert f"{target / 'config.xml'}: ok: my-live.x86_64-1.0.0.iso" in validated.stdout
    assert "note:" not in validated.output and "warning:" not in validated.output


def test_it_plans_like_the_bundled_example(tmp_path: Path) -> None:
    """Same packages, repositories, live type, initrd and boot menu as examples/bookworm-live,
    apart from the name-derived label and title: what CI boots is what init writes."""
    init_description(InitRequest(tmp_path / "bookworm-live", user="demo"))
    mine, example = _plan(tmp_path / "bookworm-live"), _plan(EXAMPLE)
    assert mine.notes == [] and mine.warnings == []
    # The example's en_US needs locale data, which the plan adds; init's C.UTF-8 is glibc's own.
    assert (*mine.options["resolve"].packages, "locales") == example.options["resolve"].packages
    assert {"linux-image-amd64", "systemd-sysv", "login", "passwd", "dracut",
            "dracut-live"} <= set(mine.options["resolve"].packages)
    assert mine.options["resolve"].repositories == example.options["resolve"].repositories
    assert [(r.suite, r.url) for r in mine.options["resolve"].repositories] == [
        ("bookworm", "http://deb.debian.org/debian"), ("bookworm-updates", "http://deb.debian.org/debian"),
        ("bookworm-security", "http://deb.debian.org/debian-security")]
    assert mine.options["squashfs"] == example.options["squashfs"]
    assert mine.options["initrd"] == example.options["initrd"]
    iso, example_iso = mine.options["iso"], example.options["iso"]
    assert [e.kernel_cmdline for e in iso.menu.entries] == [e.kernel_cmdline for e in example_iso.menu.entries]
    titled = dataclasses.replace(iso.menu, entries=example_iso.menu.entries)
    assert dataclasses.replace(iso, title=example_iso.title, application_id=example_iso.application_id,
                               menu=titled) == example_iso
    assert "dmsquash-live" in mine.options["initrd"].dracut_modules
    rootfs, example_rootfs = mine.options["rootfs"], example.options["rootfs"]
    assert rootfs.serial_console == example_rootfs.serial_console == "ttyS0"
    assert (rootfs.suite, rootfs.keytable, rootfs.timezone) == (example_rootfs.suite, "us", "UTC")
    assert rootfs.locale == "C.UTF-8" and rootfs.generate_locales == ()  # built into glibc: nothing to compile
    assert [u.name for u in rootfs.users] == ["root", "demo"]


def test_the_type_differs_from_the_example_only_in_its_label(tmp_path: Path) -> None:
    init_description(InitRequest(tmp_path / "first", name="first"))
    mine = parse_description(tmp_path / "first").live
    example = parse_description(EXAMPLE).live
    assert mine.volid == "FIRST" and mine.publisher is None and mine.application_id is None
    assert dataclasses.replace(mine, volid=example.volid, publisher=example.publisher,
                               application_id=example.application_id,
                               layout=dataclasses.replace(mine.layout, line=example.layout.line)) == example


@pytest.mark.parametrize(("attribute", "field", "default"), [
    ("flags", "flags", LiveType().flags.value),
    ("firmware", "firmware", LiveType().firmware.value),
    ("squashfscompression", "squashfscompression", LiveType().squashfscompression.value),
])
def test_comments_state_the_default_of_each_type_attribute(tmp_path: Path, attribute: str, field: str,
                                                           default: str) -> None:
    """The comment names the value liveorch really applies when the attribute is left out."""
    path = init_description(InitRequest(tmp_path / "x")).path
    text = path.read_text()
    assert re.search(rf"\n\s+{attribute}\s+{re.escape(default)} \(the default", text), attribute
    path.write_text(re.sub(rf' {attribute}="[^"]*"', "", text, count=1))
    assert getattr(parse_description(path).live, field).value == default


def test_comments_state_the_other_defaults(tmp_path: Path) -> None:
    path = init_description(InitRequest(tmp_path / "x")).path
    text = path.read_text()
    assert f"{DEFAULT_FILESYSTEM.value} (the default)" in text
    assert f"(default {LiveType().bootloader_timeout})" in text
    assert "left out, the version is 1.0.0" in text
    bare = re.sub(r"<version>.*</version>", "", text)
    bare = re.sub(r' (volid|timeout)="[^"]*"', "", bare)
    path.write_text(bare)
    description = parse_description(path)
    assert (description.version, description.live.volid, description.live.bootloader_timeout) == ("1.0.0", None, 10)
    assert _plan(tmp_path / "x").options["iso"].volid == "X"  # "the name in capitals"


def test_passwords_are_written_as_hashes_only(runner: CliRunner, tmp_path: Path) -> None:
    secret = "correct horse battery staple"
    result = runner.invoke(app, ["init", str(tmp_path / "d"), "--user", "demo"],
                           env={"LIVEORCH_INIT_PASSWORD": secret})
    assert result.exit_code == 0, result.output
    assert "your password, stored as a SHA-512-crypt hash" in result.stdout
    assert "--password ..." in result.stdout and secret not in result.output
    text = (tmp_path / "d" / "config.xml").read_text()
    assert secret not in text and 'pwdformat="plain"' not in text.split("<users>")[1]
    users = parse_description(tmp_path / "d").users
    assert [u.pwdformat.value for u in users] == ["encrypted", "encrypted"]
    assert all(_verifies(u.password or "", secret) for u in users)
    assert users[0].password != users[1].password  # a salt of its own each


def test_the_default_password_is_the_examples(tmp_path: Path) -> None:
    (root,) = parse_description(init_description(InitRequest(tmp_path / "d")).path).users
    assert root.name == "root" and _verifies(root.password or "", DEFAULT_PASSWORD)


def test_ask_password_prompts_twice(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "d"), "--ask-password"], input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    (root,) = parse_description(tmp_path / "d").users
    assert _verifies(root.password or "", "s3cret")
    both = runner.invoke(app, ["init", str(tmp_path / "e"), "--ask-password", "--password", "x"])
    assert both.exit_code == 2 and "not both" in both.stderr


def test_a_directory_that_is_not_empty_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [f"liveorch: error: {tmp_path} is not empty: choose a new directory, or "
                                          "give --force to overwrite its config.xml"]
    assert not (tmp_path / "config.xml").exists()
    forced = runner.invoke(app, ["init", str(tmp_path), "--force", "--name", "forced"])
    assert forced.exit_code == 0, forced.output
    assert parse_description(tmp_path).name == "forced"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.xml", "notes.txt"]


def test_force_never_writes_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.xml"
    outside.write_text("keep")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.xml").symlink_to(outside)
    init_description(InitRequest(tmp_path / "d", force=True))
    assert outside.read_text() == "keep"
    assert not (tmp_path / "d" / "config.xml").is_symlink()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--name", "no/slash"], "--name: an image name is"),
    (["--user", "Root Admin"], "--user 'Root Admin': a user name is"),
    (["--user", "root"], "root is always there"),
    (["--password", ""], "an empty password"),
    (["--suite", "sid"], "'sid' is not one of"),
])
def test_bad_options_are_refused(runner: CliRunner, tmp_path: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "d"), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "d").exists()


def test_trixie(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "t"), "--suite", "trixie"])
    assert result.exit_code == 0, result.output
    assert "note: liveorch's CI builds and boots this description on bookworm, not on trixie" in result.stdout
    plan = _plan(tmp_path / "t")
    assert [r.suite for r in plan.options["resolve"].repositories] == ["trixie", "trixie-updates", "trixie-security"]
    assert plan.options["rootfs"].suite == Suite.TRIXIE.value


def test_every_comment_is_well_formed_for_any_name(tmp_path: Path) -> None:
    """Names and paths stay out of comments: an XML comment cannot hold '--', which names may."""
    path = init_description(InitRequest(tmp_path / "a--b")).path
    tree = etree.parse(str(path))
    assert tree.getroot().get("name") == "a--b"
    assert "${" not in path.read_text()
