"""unknown_markup: warnings (never errors) for KIWI markup liveorch does not know, with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.kiwi_schema import KNOWN, unknown_markup
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import make_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _root(path: Path) -> etree._Element:
    return etree.fromstring(path.read_bytes())


def test_unknown_element_warns_with_file_and_line(write_description, line) -> None:
    path = write_description(extra="    <frobnicate level=\"3\"/>\n")
    warnings = unknown_markup(_root(path), path)
    assert warnings == [f"{path}:{line(path, '<frobnicate')}: unknown element <frobnicate> ignored"]


def test_unknown_attribute_warns_with_file_and_line(write_description, line) -> None:
    path = write_description(type='<type image="iso" volid="X" colour="blue" primary="true"/>')
    warnings = unknown_markup(_root(path), path)
    assert warnings == [f"{path}:{line(path, '<type ')}: unknown attribute colour= on <type> ignored"]


def test_each_unknown_thing_warns_once_in_document_order(write_description, line) -> None:
    repositories = """<repository type="apt-deb" alias="debian" distribution="bookworm" mirrorlist="yes">
        <source path="http://deb.debian.org/debian" weight="1"/>
    </repository>"""
    path = write_description(repositories=repositories, extra="    <frobnicate/>\n    <frobnicate/>\n")
    warnings = unknown_markup(_root(path), path)
    frobnicate = line(path, "<frobnicate")
    assert warnings == [
        f"{path}:{line(path, '<repository ')}: unknown attribute mirrorlist= on <repository> ignored",
        f"{path}:{line(path, '<source path')}: unknown attribute weight= on <source> ignored",
        f"{path}:{frobnicate}: unknown element <frobnicate> ignored",
        f"{path}:{frobnicate + 1}: unknown element <frobnicate> ignored",
    ]


def test_unknown_element_children_are_reported_too(write_description, line) -> None:
    path = write_description(extra="    <wrapper>\n        <inner/>\n    </wrapper>\n")
    warnings = unknown_markup(_root(path), path)
    assert warnings == [
        f"{path}:{line(path, '<wrapper>')}: unknown element <wrapper> ignored",
        f"{path}:{line(path, '<inner/>')}: unknown element <inner> ignored",
    ]


def test_known_kiwi_attributes_give_no_warning(write_description) -> None:
    kiwi_type = """<type image="iso" primary="true" filesystem="ext4" hybrid="true" mediacheck="false"
              volid="KNOWN" publisher="me" application_id="app" eficsm="false" devicepersistency="by-uuid">
            <bootloader name="grub2" console="serial" timeout="5" timeout_style="hidden" output_console="serial"
                        input_console="serial" serial_line="serial --unit=0"/>
        </type>"""
    path = write_description(type=kiwi_type)
    assert unknown_markup(_root(path), path) == []


def test_comments_and_processing_instructions_give_no_warning(write_description) -> None:
    extra = "    <!-- a comment with <fake attr=\"1\"/> markup -->\n    <?liveorch ignore-me?>\n"
    path = write_description(extra=extra)
    assert unknown_markup(_root(path), path) == []


def test_schema_location_attribute_is_known(write_description) -> None:
    text = (Path(write_description()).read_text()
            .replace('<image schemaversion="7.4"',
                     '<image xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                     'xsi:noNamespaceSchemaLocation="kiwi.rng" schemaversion="7.4" id="1234"'))
    path = write_description(text=text)
    assert unknown_markup(_root(path), path) == []


def test_any_attribute_elements_accept_everything(write_description) -> None:
    extra = '    <oemconfig anything="1" whatever="2"/>\n    <containerconfig name="x" tag="y"/>\n'
    path = write_description(extra=extra)
    assert "oemconfig" in KNOWN
    assert unknown_markup(_root(path), path) == []


@pytest.mark.parametrize(("example", "profiles", "overrides"), [
    ("bookworm-live", (), None),
    # The example's first repository is obs://, which liveorch cannot reach: replace it as a user would.
    ("kiwi-features", ("Live",), Overrides(set_repo="http://deb.debian.org/debian")),
])
def test_examples_have_no_unknown_markup(example: str, profiles: tuple[str, ...], overrides: Overrides | None) -> None:
    path = EXAMPLES / example / "config.xml"
    assert unknown_markup(_root(path), path) == []
    description = parse_description(path, profiles=profiles, overrides=overrides)
    assert description.warnings == []
    assert not any("unknown" in note for note in make_plan(description).notes)


def test_warnings_reach_description_and_plan_notes(write_description, line) -> None:
    path = write_description(type='<type image="iso" volid="X" colour="blue"/>', extra="    <frobnicate/>\n")
    description = parse_description(path)
    expected = [
        f"{path}:{line(path, '<type ')}: unknown attribute colour= on <type> ignored",
        f"{path}:{line(path, '<frobnicate')}: unknown element <frobnicate> ignored",
    ]
    assert description.warnings == expected
    plan = make_plan(description)
    assert plan.notes[:2] == expected
    # Warnings do not stop the build: the plan is complete.
    assert plan.options["iso"].volid == "X"
    # They are notes, not the trust warnings (repositories used without signature checks).
    assert plan.warnings == []


def test_unknown_markup_in_an_unselected_profile_still_warns(write_description, line) -> None:
    extra = """    <profiles>
        <profile name="Live" description="live"/>
        <profile name="Other" description="other"/>
    </profiles>
    <packages type="image" profiles="Other" flavour="x">
        <package name="other-only"/>
    </packages>
"""
    path = write_description(extra=extra)
    description = parse_description(path, profiles=("Live",))
    assert "other-only" not in description.packages
    where = f"{path}:{line(path, 'flavour=')}"
    assert description.warnings == [f"{where}: unknown attribute flavour= on <packages> ignored"]
