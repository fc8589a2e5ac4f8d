"""resolve's fetch: .debs from the package pool (named by sha256, checked on copy), the
offline refusal, and downloads checked against the repository index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fake_debs import BASE, HELLO, locked

from liveorch.stages.contracts.resolve import LockedPackage
from liveorch.stages.resolve import fetch
from liveorch.stages.tools import StageError

HELLO_PACKAGE = locked("hello", "1:2.10-3", HELLO)
BASE_PACKAGE = locked("base-files", "12.4+deb12u5", BASE)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    download, pool, debs = tmp_path / "download", tmp_path / "store/pool", tmp_path / "debs"
    for folder in (download, pool, debs):
        folder.mkdir(parents=True)
    return download, pool, debs


def pool_file(pool: Path, package: LockedPackage, data: bytes) -> Path:
    path = pool / f"{package.sha256}.deb"
    path.write_bytes(data)
    return path


def test_offline_copies_pooled_debs_after_checking_them(folders, commands) -> None:
    download, pool, debs = folders
    pool_file(pool, HELLO_PACKAGE, HELLO)
    pool_file(pool, BASE_PACKAGE, BASE)

    downloaded = fetch([BASE_PACKAGE, HELLO_PACKAGE], {}, download, pool, debs, offline=True)

    assert downloaded == 0
    assert sorted(p.name for p in debs.iterdir()) == ["base-files_12.4+deb12u5_amd64.deb", "hello_2.10-3_amd64.deb"]
    assert (debs / "hello_2.10-3_amd64.deb").read_bytes() == HELLO
    assert not (debs / "hello_2.10-3_amd64.deb").is_symlink()  # a copy: the store is read-only
    assert commands.calls == []


def test_a_pooled_file_with_other_bytes_is_not_used(folders, commands, capsys) -> None:
    """A corrupted pool file is never installed: offline the package counts as missing;
    online it is downloaded again."""
    download, pool, debs = folders
    pool_file(pool, HELLO_PACKAGE, HELLO + b"bit rot")

    with pytest.raises(StageError, match=re.escape("not in the package cache: hello_2.10-3_amd64.deb")):
        fetch([HELLO_PACKAGE], {}, download, pool, debs, offline=True)
    assert list(debs.iterdir()) == []  # the bad copy is not left behind
    assert commands.calls == []
    assert "the pooled copy of hello_2.10-3_amd64.deb does not match its sha256: not used" in capsys.readouterr().out


def test_offline_with_a_package_missing_from_the_pool_names_it(folders, commands) -> None:
    download, pool, debs = folders
    pool_file(pool, BASE_PACKAGE, BASE)

    with pytest.raises(StageError) as error:
        fetch([BASE_PACKAGE, HELLO_PACKAGE], {}, download, pool, debs, offline=True)
    assert str(error.value) == ("offline, and 1 locked package(s) are not in the package cache: "
                                "hello_2.10-3_amd64.deb")
    assert commands.calls == []


def apt_download(files: dict[str, bytes]):
    """What `apt-get download` leaves in its working folder."""

    def handler(call, _stdout) -> None:
        for name, data in files.items():
            (call.cwd / name).write_bytes(data)

    return handler


def test_online_downloads_what_the_pool_lacks_and_checks_it(folders, commands) -> None:
    download, pool, debs = folders
    pool_file(pool, BASE_PACKAGE, BASE)
    commands.on("apt-get", apt_download({"hello_2.10-3_amd64.deb": HELLO}))
    env = {"APT_CONFIG": "/tmp/apt/apt.conf"}

    downloaded = fetch([BASE_PACKAGE, HELLO_PACKAGE], env, download, pool, debs, offline=False)

    assert downloaded == 1
    assert commands.argvs == [["apt-get", "-q", "download", "hello=1:2.10-3"]]
    assert commands.calls[0].cwd == download and commands.calls[0].env == env
    assert (debs / "hello_2.10-3_amd64.deb").read_bytes() == HELLO
    assert list(download.iterdir()) == []


def test_online_refuses_a_download_that_does_not_match_the_index(folders, commands) -> None:
    download, pool, debs = folders
    commands.on("apt-get", apt_download({"hello_2.10-3_amd64.deb": HELLO + b"mirror gone bad"}))

    message = f"sha256 mismatch for hello_2.10-3_amd64.deb: the repository index says {HELLO_PACKAGE.sha256}"
    with pytest.raises(StageError, match=re.escape(message)):
        fetch([HELLO_PACKAGE], {}, download, pool, debs, offline=False)
    assert list(debs.iterdir()) == []
