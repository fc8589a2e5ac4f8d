"""A description's files (archives, config.sh/images.sh, the root/ overlay) must resolve inside its directory."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator.cli import app
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.payload import make_payload

SECRET = b"liveorch-host-secret-3b7d\n"


def packages_with(archive: str) -> str:
    return f"""<packages type="image">
        <package name="linux-image-amd64"/>
        <archive name="{archive}"/>
    </packages>"""


def archive_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("opt/readme")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"hi\n"))
    return buffer.getvalue()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory beside the description, with a secret archive in it."""
    directory = tmp_path / "host"
    directory.mkdir()
    (directory / "x.tar").write_bytes(SECRET)
    (directory / "secret.sh").write_bytes(SECRET)
    return directory


@pytest.fixture
def description(tmp_path: Path) -> Path:
    directory = tmp_path / "desc"
    directory.mkdir()
    return directory


def write_config(directory: Path, render: Callable[..., str], archive: str | None = None) -> Path:
    path = directory / "config.xml"
    path.write_text(render(packages=packages_with(archive)) if archive else render())
    return path


def payload_error(directory: Path) -> str:
    with pytest.raises(DescriptionError) as caught:
        make_payload(parse_description(directory))
    return str(caught.value)


def test_archive_through_a_symlinked_directory_is_refused(description: Path, outside: Path, render, line) -> None:
    (description / "archives").symlink_to(outside)
    path = write_config(description, render, "archives/x.tar")
    message = payload_error(description)
    assert message == (f"{path}:{line(path, '<archive')}: archive archives/x.tar resolves outside the description "
                       f"directory (through the symlink archives -> {outside})")


def test_archive_through_a_nested_symlink_is_refused(description: Path, outside: Path, render) -> None:
    (description / "data").mkdir()
    (description / "data" / "more").symlink_to("../../host")
    write_config(description, render, "data/more/x.tar")
    assert "(through the symlink data/more -> ../../host)" in payload_error(description)


def test_archive_symlink_to_a_host_file_is_refused(description: Path, outside: Path, render) -> None:
    (description / "x.tar").symlink_to(outside / "x.tar")
    path = write_config(description, render, "x.tar")
    assert payload_error(description).startswith(f"{path}:")
    assert f"(through the symlink x.tar -> {outside / 'x.tar'})" in payload_error(description)


def test_escape_is_reported_even_when_the_file_is_missing(description: Path, outside: Path, render) -> None:
    (description / "archives").symlink_to(outside)
    write_config(description, render, "archives/missing.tar")
    assert "resolves outside the description directory" in payload_error(description)


@pytest.mark.parametrize("name", ["../host/x.tar", "sub/../../host/x.tar", "/etc/passwd"])
def test_dotdot_and_absolute_archives_are_refused(description: Path, outside: Path, render, name: str) -> None:
    (description / "sub").mkdir()
    path = write_config(description, render, name)
    assert payload_error(description).endswith(f"<archive name={name!r}> must name a file in the description "
                                               "directory")
    assert payload_error(description).startswith(f"{path}:")


def test_archive_symlink_inside_the_directory_is_accepted(description: Path, render) -> None:
    (description / "data").mkdir()
    (description / "data" / "extra.tar").write_bytes(archive_bytes())
    (description / "extra.tar").symlink_to("data/extra.tar")
    (description / "linked").symlink_to("data")
    write_config(description, render, "extra.tar")
    payload = make_payload(parse_description(description))
    assert payload is not None
    with payload.file, tarfile.open(fileobj=payload.file) as tar:
        member = tar.getmember("archives/extra.tar")
        assert member.isfile()
        assert tar.extractfile(member).read() == archive_bytes()
    write_config(description, render, "linked/extra.tar")
    assert make_payload(parse_description(description)) is not None


def test_config_sh_symlink_to_a_host_file_is_refused(description: Path, outside: Path, render) -> None:
    (description / "config.sh").symlink_to(outside / "secret.sh")
    path = write_config(description, render)
    message = payload_error(description)
    assert message == (f"{path}: config.sh must be a regular file, not a symlink "
                       f"(config.sh -> {outside / 'secret.sh'})")


@pytest.mark.parametrize("target", ["/nonexistent/images.sh", "."])
def test_dangling_or_directory_hook_symlink_is_refused(description: Path, render, target: str) -> None:
    (description / "images.sh").symlink_to(target)
    write_config(description, render)
    assert "images.sh must be a regular file, not a symlink" in payload_error(description)


def test_symlinked_overlay_is_refused(description: Path, outside: Path, render) -> None:
    (description / "root").symlink_to(outside)
    path = write_config(description, render)
    assert payload_error(description) == (f"{path}: root/ is a symlink (root -> {outside}); the overlay must be a "
                                          "real directory")


def test_symlinks_inside_the_overlay_stay_links(description: Path, outside: Path, render) -> None:
    (description / "root" / "etc").mkdir(parents=True)
    (description / "root" / "etc" / "secret").symlink_to(outside / "secret.sh")
    (description / "root" / "host").symlink_to(outside)
    write_config(description, render)
    payload = make_payload(parse_description(description))
    assert payload is not None
    with payload.file:
        data = payload.file.read()
    assert SECRET not in data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmember("root/etc/secret").issym()
        assert tar.getmember("root/host").linkname == str(outside)
        assert "root/host/x.tar" not in tar.getnames()


def test_validate_refuses_an_escaping_archive(description: Path, outside: Path, render) -> None:
    (description / "archives").symlink_to(outside)
    path = write_config(description, render, "archives/x.tar")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "archive archives/x.tar resolves outside the description directory" in result.stderr
    assert os.path.islink(description / "archives")


def test_payload_checks_again_after_parsing(description: Path, outside: Path, render) -> None:
    """A directory swapped for a symlink between parse_description and make_payload is caught too."""
    (description / "archives").mkdir()
    (description / "archives" / "x.tar").write_bytes(archive_bytes())
    path = write_config(description, render, "archives/x.tar")
    parsed = parse_description(description)
    (description / "archives" / "x.tar").unlink()
    (description / "archives").rmdir()
    (description / "archives").symlink_to(outside)
    with pytest.raises(DescriptionError) as caught:
        make_payload(parsed)
    assert str(caught.value) == (f"{path}: archive archives/x.tar resolves outside the description directory "
                                 f"(through the symlink archives -> {outside})")
