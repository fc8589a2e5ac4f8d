"""Broken and hostile descriptions: each one is a DescriptionError pointing at file:line."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from liveorch.orchestrator.description import MAX_DESCRIPTION_BYTES, parse_description
from liveorch.orchestrator.errors import DescriptionError, LiveorchError


def raises_at(path: Path, line: int | None) -> DescriptionError:
    """Parses path, expects a DescriptionError at path:line, returns it."""
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    error = caught.value
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(where), str(error)
    assert error.exit_code == 2
    return error


# --- XML level --------------------------------------------------------------------------------


def test_unclosed_tag(write_description, line) -> None:
    text = """<?xml version="1.0" encoding="utf-8"?>
<image schemaversion="7.4" name="broken">
    <preferences>
        <version>1.0.0</version>
        <type image="iso"/>
    <repository type="apt-deb"><source path="http://deb.debian.org/debian"/></repository>
</image>
"""
    path = write_description(text=text)
    # libxml2 notices the missing </preferences> at </image> and names the opening line.
    error = raises_at(path, line(path, "</image>"))
    assert "malformed XML" in str(error)
    assert f"preferences line {line(path, '<preferences>')}" in str(error)


def test_truncated_file(write_description, example_config: Path) -> None:
    text = example_config.read_text()
    cut = text.index("<users>")
    path = write_description(text=text[:cut])
    error = raises_at(path, text[:cut].count("\n") + 1)
    assert "malformed XML" in str(error)


def test_wrong_root_element(corpus: Path, line) -> None:
    path = corpus / "wrong-root" / "config.xml"
    error = raises_at(path, line(path, "<project "))
    assert "root element is <project>" in str(error)
    assert "expected <image>" in str(error)


def _xxe_text(secret: Path, prolog_only: bool = False) -> str:
    doctype = (f'<!DOCTYPE image SYSTEM "file://{secret}">' if prolog_only
               else f'<!DOCTYPE image [<!ENTITY xxe SYSTEM "file://{secret}">]>')
    return f"""<?xml version="1.0" encoding="utf-8"?>
{doctype}
<image schemaversion="7.4" name="xxe">
    <description type="system">
        <author>&xxe;</author>
        <contact>x@example.invalid</contact>
        <specification>&xxe;</specification>
    </description>
    <preferences>
        <version>1.0.0</version>
        <type image="iso" volid="XXE"/>
    </preferences>
    <repository type="apt-deb"><source path="http://deb.debian.org/debian"/></repository>
</image>
"""


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    token = f"TOP-SECRET-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(token + "\n")
    return path, token


def test_xxe_external_entity_is_refused_without_reading_the_file(write_description, secret, line) -> None:
    secret_path, token = secret
    path = write_description(text=_xxe_text(secret_path))
    error = raises_at(path, line(path, "<!DOCTYPE"))
    assert "DTDs and entities are not allowed" in str(error)
    assert token not in str(error)
    assert token not in (error.hint or "")
    assert error.__cause__ is None


def test_external_dtd_subset_is_refused(write_description, secret, line) -> None:
    secret_path, token = secret
    path = write_description(text=_xxe_text(secret_path, prolog_only=True).replace("&xxe;", "x"))
    error = raises_at(path, line(path, "<!DOCTYPE"))
    assert "DTDs" in str(error)
    assert token not in str(error)


def test_xxe_in_utf16_does_not_leak_the_file(tmp_path: Path, secret) -> None:
    """Whatever happens to a UTF-16 XXE attempt, the referenced file's content never comes out."""
    secret_path, token = secret
    path = tmp_path / "config.xml"
    path.write_bytes(_xxe_text(secret_path).replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"))
    try:
        description = parse_description(path)
    except DescriptionError as error:
        assert token not in str(error)
    else:
        assert token not in repr(description)


def test_dtd_in_utf16_is_refused(tmp_path: Path, secret) -> None:
    secret_path, _ = secret
    path = tmp_path / "config.xml"
    path.write_bytes(_xxe_text(secret_path).replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"))
    with pytest.raises(DescriptionError, match="DTD"):
        parse_description(path)


def test_billion_laughs(corpus: Path, line) -> None:
    path = corpus / "billion-laughs" / "config.xml"
    error = raises_at(path, line(path, "<!DOCTYPE"))
    assert "DTDs and entities are not allowed" in str(error)


def test_dtd_error_points_at_the_doctype_line(write_description, line) -> None:
    path = write_description(prolog='<!DOCTYPE image [\n  <!ENTITY v "1.0.0">\n]>\n', version="&v;")
    raises_at(path, line(path, "<!DOCTYPE"))


def test_larger_than_one_mib(write_description, render) -> None:
    path = write_description(text=padded(render(), MAX_DESCRIPTION_BYTES + 1))
    assert path.stat().st_size == MAX_DESCRIPTION_BYTES + 1
    error = raises_at(path, None)
    assert "larger than" in str(error)
    assert str(MAX_DESCRIPTION_BYTES) in str(error)


def test_exactly_one_mib_is_accepted(write_description, render) -> None:
    path = write_description(text=padded(render(), MAX_DESCRIPTION_BYTES))
    assert path.stat().st_size == MAX_DESCRIPTION_BYTES
    assert parse_description(path).name == "unit-live"


def padded(text: str, size: int) -> str:
    """text plus a trailing comment, size bytes in all."""
    padding = size - len(text.encode()) - len("<!---->\n")
    assert padding > 0
    return text + "<!--" + "x" * padding + "-->\n"


# --- description level -----------------------------------------------------------------------


ATTRIBUTE_CASES = {
    # id: (substitutions, needle on the reported line, text the message must contain)
    "volid-33-chars": ({"type": f'<type image="iso" volid="{"A" * 33}"/>'}, "<type ", "volid="),
    "volid-slash": ({"type": '<type image="iso" volid="LIVE/ISO"/>'}, "<type ", "'LIVE/ISO'"),
    "volid-empty": ({"type": '<type image="iso" volid=""/>'}, "<type ", "volid=''"),
    "hybridpersistent-btrfs": (
        {"type": '<type image="iso" hybridpersistent="true" hybridpersistent_filesystem="btrfs"/>'},
        "<type ", "hybridpersistent_filesystem='btrfs' must be one of ext4, xfs"),
    "firmware": ({"type": '<type image="iso" firmware="coreboot"/>'}, "<type ", "firmware='coreboot'"),
    "flags": ({"type": '<type image="iso" flags="clic"/>'}, "<type ", "flags='clic' must be one of overlay, dmsquash"),
    "squashfscompression": ({"type": '<type image="iso" squashfscompression="bzip2"/>'}, "<type ",
                            "squashfscompression='bzip2'"),
    "efifatimagesize-word": ({"type": '<type image="iso" efifatimagesize="big"/>'}, "<type ",
                             "efifatimagesize='big' is not a number"),
    "timeout-negative": (
        {"type": '<type image="iso">\n            <bootloader name="grub2" timeout="-1"/>\n        </type>'},
        "<bootloader ", "timeout='-1' must not be negative"),
    "timeout-word": (
        {"type": '<type image="iso">\n            <bootloader name="grub2" timeout="soon"/>\n        </type>'},
        "<bootloader ", "timeout='soon' is not a number"),
    "packagemanager-zypper": ({"packagemanager": "zypper"}, "<packagemanager>", "packagemanager 'zypper'"),
    "repository-obs": (
        {"repositories": '<repository type="apt-deb" alias="obs">\n'
                         '        <source path="obs://Debian:12/standard"/>\n    </repository>'},
        '<source path="obs:', "'obs://Debian:12/standard' is not reachable"),
    "repository-rpm-md": (
        {"repositories": '<repository type="rpm-md">\n        <source path="http://example.invalid/repo"/>\n'
                         "    </repository>"},
        "<repository ", "repository type 'rpm-md'"),
    "repository-no-source": ({"repositories": '<repository type="apt-deb"/>'}, "<repository ", "needs <source"),
    "oem-only": ({"type": '<type image="oem" filesystem="ext4"/>'}, "<type ", "liveorch builds live ISOs only"),
    "no-type": ({"type": ""}, "<image ", "no <type image=\"iso\">"),
    "name-with-space": ({"name": "my image"}, "<image ", "must be a plain file name"),
    "name-with-slash": ({"name": "../escape"}, "<image ", "must be a plain file name"),
    "pwdformat": ({"extra": '    <users>\n        <user name="live" password="x" pwdformat="clear"/>\n    </users>\n'},
                  '<user name="live"', "pwdformat='clear'"),
    "user-without-name": ({"extra": '    <users>\n        <user password="x"/>\n    </users>\n'},
                          '<user password="x"', "<user> needs a name"),
}


@pytest.mark.parametrize(("substitutions", "needle", "fragment"), ATTRIBUTE_CASES.values(), ids=ATTRIBUTE_CASES)
def test_bad_description_values(write_description, line, substitutions, needle, fragment) -> None:
    path = write_description(**substitutions)
    error = raises_at(path, line(path, needle))
    assert fragment in str(error)


def test_obs_repository_error_has_a_hint(write_description) -> None:
    path = write_description(repositories='<repository type="apt-deb">\n'
                                          '        <source path="obs://Debian:12/standard"/>\n    </repository>')
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    assert "--set-repo" in (caught.value.hint or "")


def test_oem_only_corpus_description(corpus: Path, line) -> None:
    path = corpus / "oem-only" / "config.xml"
    error = raises_at(path, line(path, '<type image="oem"'))
    assert "liveorch builds live ISOs only" in str(error)
    assert "oem" in str(error)


@pytest.mark.parametrize("volid", ["A" * 32, "A", "Live-1.0_x y"])
def test_volid_limits_accepted(write_description, volid: str) -> None:
    path = write_description(type=f'<type image="iso" volid="{volid}"/>')
    assert parse_description(path).live.volid == volid


def test_zero_timeout_is_kept(write_description) -> None:
    path = write_description(type='<type image="iso"><bootloader name="grub2" timeout="0"/></type>')
    assert parse_description(path).live.bootloader_timeout == 0


def test_errors_are_liveorch_errors_without_traceback_chain(write_description) -> None:
    path = write_description(text="<image")
    with pytest.raises(LiveorchError) as caught:
        parse_description(path)
    assert isinstance(caught.value, DescriptionError)
    assert caught.value.__suppress_context__


def test_volid_with_trailing_newline_is_refused(write_description, line) -> None:
    path = write_description(type='<type image="iso" volid="LIVE&#10;"/>')
    raises_at(path, line(path, "<type "))


def test_name_with_trailing_newline_is_refused(write_description, line) -> None:
    path = write_description(name="live&#10;")
    raises_at(path, line(path, "<image "))


def test_version_with_path_separators_is_refused(write_description) -> None:
    from liveorch.orchestrator.plan import make_plan

    path = write_description(version="1.0/../../../tmp/escape")
    try:
        plan = make_plan(parse_description(path))
    except DescriptionError as error:
        assert str(error).startswith(f"{path}:")
    else:
        assert "/" not in plan.iso_name


def test_packagemanager_error_points_into_the_right_preferences(write_description, line) -> None:
    path = write_description(
        packagemanager="apt",
        extra="""    <profiles>
        <profile name="Suse" description="zypper based"/>
    </profiles>
    <preferences profiles="Suse">
        <packagemanager>zypper</packagemanager>
    </preferences>
""",
    )
    with pytest.raises(DescriptionError) as caught:
        parse_description(path, profiles=("Suse",))
    assert "zypper" in str(caught.value)
    reported = int(str(caught.value).removeprefix(f"{path}:").split(":", 1)[0])
    assert reported in (line(path, '<preferences profiles="Suse">'), line(path, "<packagemanager>zypper"))
