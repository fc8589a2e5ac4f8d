"""kiwi-ng's command-line changes: repository SPECs and overrides applied by parse_description."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import SPEC_FIELDS, Overrides, SpecError, parse_repo_spec

TWO_REPOSITORIES = """<repository type="apt-deb" alias="first" distribution="bookworm" components="main">
        <source path="http://first.example/debian"/>
    </repository>
    <repository type="apt-deb" alias="second" distribution="bookworm-updates" components="main">
        <source path="http://second.example/debian"/>
    </repository>"""


# --- SPEC parsing -------------------------------------------------------------------------------


def test_full_spec_sets_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "KEYA").write_bytes(b"\x99")
    (tmp_path / "KEYB").write_bytes(b"\x99")
    spec = "http://mirror.example/debian,apt-deb,mirror,42,true,false,{KEYA;file://KEYB},main contrib,trixie,false"
    element = parse_repo_spec("--add-repo", spec)
    # Key paths relative to the working directory, made absolute for <signing key=...>.
    assert [s.get("key") for s in element.findall("signing")] == [f"file://{tmp_path}/KEYA", f"file://{tmp_path}/KEYB"]
    assert element.tag == "repository"
    assert dict(element.attrib) == {
        "type": "apt-deb",
        "alias": "mirror",
        "priority": "42",
        "components": "main contrib",
        "distribution": "trixie",
        "imageinclude": "true",
        "package_gpgcheck": "false",
        "repository_gpgcheck": "false",
    }
    sources = element.findall("source")
    assert len(sources) == 1
    assert sources[0].get("path") == "http://mirror.example/debian"


def test_only_source_keeps_defaults() -> None:
    element = parse_repo_spec("--add-repo", "http://mirror.example/debian")
    # Alias defaults to the source; nothing else is written, so the description's defaults apply.
    assert dict(element.attrib) == {"type": "apt-deb", "alias": "http://mirror.example/debian"}
    assert element.find("source").get("path") == "http://mirror.example/debian"


def test_empty_middle_fields_keep_defaults() -> None:
    element = parse_repo_spec("--set-repo", "file:///srv/repo,,,,,,,,sid,")
    assert dict(element.attrib) == {"type": "apt-deb", "alias": "file:///srv/repo", "distribution": "sid"}


def test_fields_are_stripped_and_booleans_normalised() -> None:
    element = parse_repo_spec("--add-repo", " http://m.example/d , apt-deb , a , 7 , YES , 0 ,, main ,  bookworm , No ")
    assert element.find("source").get("path") == "http://m.example/d"
    assert element.get("alias") == "a"
    assert element.get("priority") == "7"
    assert element.get("imageinclude") == "true"
    assert element.get("package_gpgcheck") == "false"
    assert element.get("components") == "main"
    assert element.get("distribution") == "bookworm"
    assert element.get("repository_gpgcheck") == "false"


def test_commas_inside_signing_key_braces_do_not_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "key1,key2,key3").write_bytes(b"\x99")
    element = parse_repo_spec("--add-repo", "http://m.example/d,apt-deb,keyed,,,,{key1,key2,key3},non-free,bookworm,true")
    # The braces are one field: the fields after them land where they belong.
    assert element.get("alias") == "keyed"
    assert element.get("components") == "non-free"
    assert element.get("distribution") == "bookworm"
    assert element.get("repository_gpgcheck") == "true"
    assert element.get("priority") is None


def _spec_error(option: str, spec: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_repo_spec(option, spec)
    message = str(caught.value)
    assert message.startswith(f"{option} {spec!r}: "), message
    assert isinstance(caught.value, DescriptionError)
    assert caught.value.exit_code == 2
    assert "source,type,alias,priority" in caught.value.hint
    return message


def test_too_many_fields() -> None:
    spec = "http://m.example/d,apt-deb,a,1,true,true,{k},main,bookworm,true,extra"
    message = _spec_error("--add-repo", spec)
    assert f"11 fields, at most {len(SPEC_FIELDS)}" in message


@pytest.mark.parametrize("option", ["--set-repo", "--add-repo"])
def test_bad_type_names_field_and_position(option: str) -> None:
    message = _spec_error(option, "http://m.example/d,rpm-md")
    assert "field 'type' (2)" in message
    assert "'rpm-md'" in message
    assert "apt-deb" in message


@pytest.mark.parametrize("priority", ["high", "1.5", "+3", "1e3"])
def test_non_numeric_priority(priority: str) -> None:
    message = _spec_error("--add-repo", f"http://m.example/d,apt-deb,a,{priority}")
    assert "field 'priority' (4)" in message
    assert f"{priority!r}, not a number" in message


@pytest.mark.parametrize(("index", "name"), [(5, "imageinclude"), (6, "package_gpgcheck"), (10, "repo_gpgcheck")])
@pytest.mark.parametrize("option", ["--set-repo", "--add-repo"])
def test_non_boolean_flags(option: str, index: int, name: str) -> None:
    fields = ["http://m.example/d", "", "", "", "", "", "", "", "", ""]
    fields[index - 1] = "maybe"
    message = _spec_error(option, ",".join(fields))
    assert f"field '{name}' ({index}) is 'maybe', not true/false" in message


@pytest.mark.parametrize("spec", ["", ",apt-deb,alias", "  ,apt-deb"])
def test_missing_source(spec: str) -> None:
    message = _spec_error("--set-repo", spec)
    assert "field 'source' (1) is empty" in message


@pytest.mark.parametrize("source", ["obs://Debian:12/standard", "deb.debian.org/debian", "ftp://m.example/d"])
def test_unreachable_source_scheme(source: str) -> None:
    message = _spec_error("--add-repo", f"{source},apt-deb")
    assert "field 'source' (1)" in message
    assert "http(s):// or file://" in message


def test_signing_keys_without_braces() -> None:
    message = _spec_error("--add-repo", "http://m.example/d,,,,,,KEY")
    assert "field 'signing_keys' (7)" in message


def test_missing_signing_key_file_names_the_field_and_file(tmp_path: Path) -> None:
    message = _spec_error("--add-repo", f"http://m.example/d,,,,,,{{file://{tmp_path}/missing.asc}}")
    assert f"field 'signing_keys' (7): no such key file '{tmp_path}/missing.asc'" in message


def test_signing_key_from_the_network_is_refused() -> None:
    message = _spec_error("--add-repo", "http://m.example/d,,,,,,{https://m.example/key.asc}")
    assert "field 'signing_keys' (7): 'https://m.example/key.asc' is not a key file" in message


def test_double_minus_priority_is_refused_by_the_spec_check() -> None:
    with pytest.raises(SpecError, match=r"field 'priority' \(4\)"):
        parse_repo_spec("--add-repo", "http://m.example/d,apt-deb,a,--5")


def test_superscript_priority_is_refused_by_the_spec_check() -> None:
    with pytest.raises(SpecError, match=r"field 'priority' \(4\)"):
        parse_repo_spec("--add-repo", "http://m.example/d,apt-deb,a,\u00b2")


def test_negative_priority_error_names_the_option(write_description) -> None:
    path = write_description()
    with pytest.raises(DescriptionError, match=r"--set-repo.*field 'priority' \(4\)"):
        parse_description(path, overrides=Overrides(set_repo="http://m.example/d,apt-deb,a,-5"))


def test_control_character_in_spec_is_a_description_error() -> None:
    with pytest.raises(DescriptionError):
        parse_repo_spec("--add-repo", "http://m.example/d,apt-deb,bad\x01alias")


# --- applied through parse_description ----------------------------------------------------------


def test_set_repo_replaces_the_first_repository(write_description) -> None:
    path = write_description(repositories=TWO_REPOSITORIES)
    description = parse_description(path, overrides=Overrides(set_repo="http://mirror.example/debian,,mirror,,,,,,trixie"))
    assert [(r.alias, r.source, r.distribution) for r in description.repositories] == [
        ("mirror", "http://mirror.example/debian", "trixie"),
        ("second", "http://second.example/debian", "bookworm-updates"),
    ]
    # Defaults for the fields the SPEC left empty.
    assert description.repositories[0].components == ("main",)
    assert description.repositories[0].priority is None
    assert description.repositories[0].imageinclude is False


def test_set_repo_makes_an_unreachable_description_buildable() -> None:
    features = Path(__file__).resolve().parents[2] / "examples" / "kiwi-features"
    with pytest.raises(DescriptionError, match="obs://"):
        parse_description(features, profiles=("Live",))
    description = parse_description(features, profiles=("Live",),
                                    overrides=Overrides(set_repo="http://deb.debian.org/debian,apt-deb,debian,,true"))
    assert [r.source for r in description.repositories] == [
        "http://deb.debian.org/debian", "http://deb.debian.org/debian-security",
    ]
    assert description.repositories[0].imageinclude is True


def test_set_repo_without_repositories_adds_one(write_description) -> None:
    path = write_description(repositories="")
    description = parse_description(path, overrides=Overrides(set_repo="file:///srv/pool"))
    assert [r.source for r in description.repositories] == ["file:///srv/pool"]
    assert description.repositories[0].trusted is True


def test_ignore_repos_and_add_repo(write_description) -> None:
    path = write_description(repositories=TWO_REPOSITORIES)
    overrides = Overrides(ignore_repos=True, add_repos=[
        "http://a.example/debian,,a,,,,,,bookworm",
        "http://b.example/debian,apt-deb,b,3,,,,main contrib,sid,false",
    ])
    description = parse_description(path, overrides=overrides)
    assert [r.alias for r in description.repositories] == ["a", "b"]
    b = description.repositories[1]
    assert (b.source, b.distribution, b.components, b.priority, b.trusted) == (
        "http://b.example/debian", "sid", ("main", "contrib"), 3, True)
    assert description.repositories[0].trusted is False


def test_add_repo_keeps_existing(write_description) -> None:
    path = write_description(repositories=TWO_REPOSITORIES)
    description = parse_description(path, overrides=Overrides(add_repos=["http://c.example/debian,,c"]))
    assert [r.alias for r in description.repositories] == ["first", "second", "c"]


def test_ignore_repos_alone_leaves_no_repository(write_description) -> None:
    path = write_description(repositories=TWO_REPOSITORIES)
    with pytest.raises(DescriptionError, match="no <repository>"):
        parse_description(path, overrides=Overrides(ignore_repos=True))


def test_bad_spec_is_refused_by_parse_description(write_description) -> None:
    path = write_description()
    with pytest.raises(SpecError, match=r"--add-repo 'http://x.example,rpm-md': field 'type' \(2\)"):
        parse_description(path, overrides=Overrides(add_repos=["http://x.example,rpm-md"]))


def test_add_package(write_description) -> None:
    path = write_description()
    description = parse_description(path, overrides=Overrides(add_packages=["vim-tiny", "g++-12"]))
    assert description.packages[-2:] == ["vim-tiny", "g++-12"]
    assert "linux-image-amd64" in description.packages
    assert description.delete_packages == []


def test_delete_package(write_description) -> None:
    path = write_description()
    description = parse_description(path, overrides=Overrides(delete_packages=["nano"]))
    assert description.delete_packages == ["nano"]
    assert "nano" not in description.packages


@pytest.mark.parametrize(("field_name", "option"), [("add_packages", "--add-package"),
                                                    ("delete_packages", "--delete-package")])
@pytest.mark.parametrize("name", ["Vim", "x", "-rf", "pkg;rm", "a b", "name_with_underscore", ""])
def test_invalid_package_name_is_refused(write_description, field_name: str, option: str, name: str) -> None:
    path = write_description()
    with pytest.raises(DescriptionError) as caught:
        parse_description(path, overrides=Overrides(**{field_name: [name]}))
    assert f"{option} {name!r} is not a Debian package name" in str(caught.value)


def test_set_type_attr_changes_volid(write_description) -> None:
    path = write_description()
    assert parse_description(path).live.volid == "UNIT_LIVE"
    description = parse_description(path, overrides=Overrides(type_attrs=["volid=NEW"]))
    assert description.live.volid == "NEW"


def test_set_type_attr_several_attributes(write_description) -> None:
    path = write_description()
    description = parse_description(path, overrides=Overrides(
        type_attrs=["kernelcmdline=quiet splash=1", "squashfscompression=zstd", "firmware=bios"]))
    assert description.live.kernelcmdline == "quiet splash=1"
    assert description.live.squashfscompression == "zstd"
    assert description.live.firmware == "bios"


def test_set_type_attr_volid_validated_as_in_xml(write_description, line) -> None:
    long_volid = "V" * 33
    # The same value written in the XML ...
    xml_path = write_description(type=f'<type image="iso" volid="{long_volid}"/>', filename="written.xml")
    with pytest.raises(DescriptionError) as written:
        parse_description(xml_path)
    # ... and given on the command line are refused with the same message, naming the option
    # (the file does not hold the mistake).
    path = write_description(type='<type image="iso" volid="SHORT"/>')
    with pytest.raises(DescriptionError) as overridden:
        parse_description(path, overrides=Overrides(type_attrs=[f"volid={long_volid}"]))
    message = f"volid={long_volid!r}: use 1-32 letters"
    assert message in str(written.value)
    assert str(written.value).startswith(f"{xml_path}:{line(xml_path, '<type image=')}: ")
    assert str(overridden.value).startswith(f"--set-type-attr volid={long_volid}: {message}")
    assert str(path) not in str(overridden.value)


def test_set_type_attr_bad_choice_validated_as_in_xml(write_description) -> None:
    path = write_description()
    with pytest.raises(DescriptionError, match="flags='bogus' must be one of overlay, dmsquash"):
        parse_description(path, overrides=Overrides(type_attrs=["flags=bogus"]))


@pytest.mark.parametrize("setting", ["volid", "volid:NEW", "=NEW", "Volid=NEW", "bootloader.timeout=3"])
def test_malformed_set_type_attr(write_description, setting: str) -> None:
    path = write_description()
    with pytest.raises(DescriptionError) as caught:
        parse_description(path, overrides=Overrides(type_attrs=[setting]))
    assert f"--set-type-attr {setting!r}: write ATTRIBUTE=VALUE" in str(caught.value)


def test_set_type_attr_without_iso_type(write_description) -> None:
    path = write_description(type='<type image="oem" filesystem="ext4"/>')
    with pytest.raises(DescriptionError, match=r'--set-type-attr: the description has no <type image="iso">'):
        parse_description(path, overrides=Overrides(type_attrs=["volid=NEW"]))


def test_set_type_attr_typo_is_reported_like_in_xml(write_description) -> None:
    written = parse_description(write_description(type='<type image="iso" volidd="X"/>', filename="written.xml"))
    assert any("volidd=" in w for w in written.warnings)
    overridden = parse_description(write_description(), overrides=Overrides(type_attrs=["volidd=X"]))
    assert any("volidd=" in w for w in overridden.warnings)


def test_no_overrides_changes_nothing(write_description) -> None:
    path = write_description(repositories=TWO_REPOSITORIES)
    assert parse_description(path, overrides=Overrides()) == parse_description(path)


def test_fast_picks_lz4_over_the_description_and_set_type_attr(write_description) -> None:
    """--fast is the development preset: it wins over what the description and --set-type-attr say."""
    path = write_description(type='<type image="iso" squashfscompression="xz"/>')
    description = parse_description(path, overrides=Overrides(type_attrs=["squashfscompression=zstd"], fast=True))
    assert description.live.squashfscompression == "lz4"
    assert description.live.layout.erofs is None
    assert not [w for w in description.warnings if "erofscompression" in w], "no erofs warning for a squashfs root"


def test_fast_gives_an_erofs_root_lz4_too(write_description) -> None:
    path = write_description(type='<type image="iso" filesystem="erofs" erofscompression="lz4hc,12"/>')
    assert str(parse_description(path, overrides=Overrides(fast=True)).live.layout.erofs) == "lz4"
    assert str(parse_description(path).live.layout.erofs) == "lz4hc,12"


def test_the_requested_options_go_into_report_json_without_what_apply_found(tmp_path) -> None:
    """apply() keeps the lxml elements it made (for messages that name the option); report.json
    gets only what the user asked for, which json can write."""
    import json

    from lxml import etree

    from liveorch.orchestrator.overrides import Overrides

    overrides = Overrides(add_repos=["http://deb.debian.org/debian,apt-deb,extra,,,,,main,bookworm,"],
                          add_packages=["vim"], type_attrs=["volid=X"])
    root = etree.fromstring(b'<image><preferences><type image="iso"/></preferences><packages type="image"/>'
                            b'<repository><source path="http://a"/></repository></image>')
    overrides.apply(root, tmp_path / "config.xml")
    assert overrides.made  # elements were recorded
    requested = overrides.requested()
    assert json.loads(json.dumps(requested)) == requested
    assert requested["add_packages"] == ["vim"] and "made" not in requested and "set_attributes" not in requested
