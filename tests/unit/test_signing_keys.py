"""Repository signing keys: <signing key=...> and the SPEC's {signing_keys}, read on the host,
carried in the resolve request, and used by resolve for their own repository only."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import liveorch.stages.resolve as resolve
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.plan import make_plan
from liveorch.stages.contract import decode, encode
from liveorch.stages.contracts.resolve import AptRepository, ResolveOptions

ARMORED = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n"
BINARY = b"\x98\x33\x04binary-key"


def _keyed(*keys: str) -> str:
    signing = "".join(f'\n        <signing key="{key}"/>' for key in keys)
    return f"""<repository type="apt-deb" alias="debian" distribution="bookworm" components="main">
        <source path="http://deb.debian.org/debian"/>
    </repository>
    <repository type="apt-deb" alias="vendor" distribution="stable" components="main">
        <source path="http://vendor.example/apt"/>{signing}
    </repository>"""


def test_relative_and_file_uri_keys_reach_the_resolve_request(write_description, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "vendor.asc").write_bytes(ARMORED)
    (tmp_path / "elsewhere.gpg").write_bytes(BINARY)
    path = write_description(repositories=_keyed("keys/vendor.asc", f"file://{tmp_path}/elsewhere.gpg"))
    description = parse_description(path)
    assert description.repositories[0].signing_keys == ()
    assert description.repositories[1].signing_keys == (ARMORED, BINARY)
    options = make_plan(description).options["resolve"]
    # The request carries them through the strict codec unchanged.
    assert decode(ResolveOptions, json.loads(json.dumps(encode(options)))) == options
    repositories = options.repositories
    assert all(isinstance(r, AptRepository) for r in repositories)
    assert repositories[0].signing_keys == ()
    assert [base64.b64decode(k, validate=True) for k in repositories[1].signing_keys] == [ARMORED, BINARY]


def test_missing_key_names_the_file_the_repository_and_the_line(write_description, tmp_path: Path, line) -> None:
    path = write_description(repositories=_keyed("file:///nonexistent/vendor.asc"))
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line(path, '<signing')}: ")
    assert "signing key 'file:///nonexistent/vendor.asc' of repository 'vendor': cannot read " \
           "/nonexistent/vendor.asc: No such file or directory" in message


@pytest.mark.parametrize(("key", "reason"), [
    ("https://vendor.example/key.asc", "liveorch reads keys from files"),
    ("notakey.txt", "is not an OpenPGP public key"),
    ("", "needs key="),
])
def test_unusable_keys_are_refused(write_description, tmp_path: Path, key: str, reason: str) -> None:
    (tmp_path / "notakey.txt").write_text("hello\n")
    path = write_description(repositories=_keyed(key))
    with pytest.raises(DescriptionError, match=reason):
        parse_description(path)


def test_oversized_key_is_refused(write_description, tmp_path: Path) -> None:
    (tmp_path / "huge.asc").write_bytes(ARMORED + b"x" * (2 << 20))
    with pytest.raises(DescriptionError, match="larger than 1 MiB"):
        parse_description(write_description(repositories=_keyed("huge.asc")))


def test_add_repo_spec_keys_become_signing_elements(write_description, tmp_path: Path) -> None:
    (tmp_path / "vendor.asc").write_bytes(ARMORED)
    path = write_description()
    overrides = Overrides(add_repos=[f"http://vendor.example/apt,apt-deb,vendor,,,,{{{tmp_path}/vendor.asc}},main,stable"])
    description = parse_description(path, overrides=overrides)
    assert description.repositories[-1].signing_keys == (ARMORED,)


# --- the resolve stage ---------------------------------------------------------------------------


def _option(trusted: bool = False, keys: tuple[bytes, ...] = (ARMORED, BINARY)) -> AptRepository:
    return AptRepository(url="http://vendor.example/apt/", suite="stable", components=("main",), alias="vendor",
                         trusted=trusted, signing_keys=tuple(base64.b64encode(k).decode() for k in keys))


def _repository(trusted: bool = False, keys: tuple[bytes, ...] = (ARMORED, BINARY)) -> resolve.Repository:
    return resolve.Repository.from_option(_option(trusted, keys))


def test_resolve_signs_by_debian_and_the_repositorys_own_keys(tmp_path: Path) -> None:
    repository = _repository()
    assert repository.signing_keys == (ARMORED, BINARY)
    keyrings = tmp_path / "keyrings"
    assert [file for file, _ in repository.key_files(keyrings, 2)] == [keyrings / "repository2-key0.asc",
                                                                      keyrings / "repository2-key1.gpg"]
    assert [key for _, key in repository.key_files(keyrings, 2)] == [ARMORED, BINARY]
    assert repository.sources_line(keyrings, 2) == (
        f"deb [signed-by={resolve.DEBIAN_KEYRING},{keyrings}/repository2-key0.asc,{keyrings}/repository2-key1.gpg] "
        "http://vendor.example/apt stable main")
    plain = _repository(keys=())
    assert plain.key_files(keyrings, 0) == []
    assert plain.sources_line(keyrings, 0) == (
        f"deb [signed-by={resolve.DEBIAN_KEYRING}] http://vendor.example/apt stable main")
    assert _repository(trusted=True).sources_line(keyrings, 0) == (
        "deb [trusted=yes] http://vendor.example/apt stable main")


def test_resolve_writes_the_keys_into_its_private_root(tmp_path: Path) -> None:
    apt_root = tmp_path / "apt"
    env = resolve.write_apt_config(apt_root, [_repository(keys=()), _repository()], "amd64")
    keyrings = apt_root / "keyrings"
    assert (keyrings / "repository1-key0.asc").read_bytes() == ARMORED
    assert (keyrings / "repository1-key1.gpg").read_bytes() == BINARY
    assert sorted(p.name for p in keyrings.iterdir()) == ["repository1-key0.asc", "repository1-key1.gpg"]
    sources = (apt_root / "etc/apt/sources.list").read_text().splitlines()
    assert sources == [
        f"deb [signed-by={resolve.DEBIAN_KEYRING}] http://vendor.example/apt stable main",
        f"deb [signed-by={resolve.DEBIAN_KEYRING},{keyrings}/repository1-key0.asc,{keyrings}/repository1-key1.gpg] "
        "http://vendor.example/apt stable main",
    ]
    assert env["APT_CONFIG"] == str(apt_root / "apt.conf")


def test_resolve_refuses_keys_that_are_not_base64() -> None:
    option = AptRepository(url="http://v.example", suite="s", components=("main",), alias="v", trusted=False,
                           signing_keys=("not base64!",))
    with pytest.raises(resolve.StageError, match=r"repository http://v\.example: signing_keys must be base64"):
        resolve.Repository.from_option(option)
