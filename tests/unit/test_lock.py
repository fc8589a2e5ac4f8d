"""The lock file: loading (missing, malformed, valid, written before trust was recorded) and
checking it against the description."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import LiveorchError, LockError
from liveorch.orchestrator.lock import check_lock, load_lock, lock_path
from liveorch.orchestrator.plan import make_plan
from liveorch.stages.contract import encode
from liveorch.stages.contracts.resolve import (
    LOCK_FORMAT,
    AptRepository,
    Lock,
    LockedPackage,
    LockedRepository,
)

DEBIAN = {"alias": "debian", "url": "http://deb.debian.org/debian", "suite": "bookworm", "components": ["main"]}
SECURITY = {"alias": "security", "url": "http://deb.debian.org/debian-security", "suite": "bookworm-security",
            "components": ["main"]}
LOCAL = {"alias": "local", "url": "file:///srv/repo", "suite": "stable", "components": ["main"]}


def entry(name: str, version: str = "1.0-1") -> LockedPackage:
    return LockedPackage(name=name, version=version, architecture="amd64", sha256="ab" * 32, size=1234,
                         filename=f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb", repository="debian")


def locked(repository: dict[str, Any], trusted: bool = False) -> LockedRepository:
    return LockedRepository(alias=repository["alias"], url=repository["url"], suite=repository["suite"],
                            components=tuple(repository["components"]), trusted=trusted,
                            local=repository["url"].startswith("file://"))


def make_lock(names: list[str] | tuple[str, ...], repositories: list[dict[str, Any]] | None = None,
              requested: list[str] | tuple[str, ...] = ()) -> Lock:
    return Lock(format=LOCK_FORMAT, architecture="amd64", source_date_epoch=1_700_000_000,
                repositories=tuple(locked(r) for r in ([DEBIAN] if repositories is None else repositories)),
                requested=tuple(requested), packages=tuple(entry(n) for n in names))


def lock_json(lock: Lock) -> dict[str, Any]:
    """The lock as the resolve stage writes it."""
    return encode(lock)


@pytest.fixture
def lock_file(tmp_path: Path) -> Path:
    return tmp_path / "unit-live.lock"


# --- load_lock ----------------------------------------------------------------------------------


def test_missing_lock_not_required(lock_file: Path) -> None:
    assert load_lock(lock_file, required=False) is None


def test_missing_lock_required(lock_file: Path) -> None:
    with pytest.raises(LockError) as caught:
        load_lock(lock_file, required=True)
    assert str(caught.value) == f"{lock_file}: no such lock file"
    assert caught.value.exit_code == 5
    assert isinstance(caught.value, LiveorchError)


def test_directory_is_not_a_lock(tmp_path: Path) -> None:
    assert load_lock(tmp_path, required=False) is None
    with pytest.raises(LockError, match="no such lock file"):
        load_lock(tmp_path, required=True)


def _valid() -> dict[str, Any]:
    return lock_json(make_lock(["bash"], requested=["bash"]))


def _with(**changes: Any) -> str:
    return json.dumps({**_valid(), **changes})


def _without(name: str) -> str:
    data = _valid()
    del data[name]
    return json.dumps(data)


def _package(**changes: Any) -> str:
    data = _valid()
    data["packages"] = [{**data["packages"][0], **changes}]
    return json.dumps(data)


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "Expecting property name"),
    ("", "Expecting value"),
    ("null", "lock: expected dict, got NoneType"),
    ("[]", "lock: expected dict, got list"),
    ('"a string"', "lock: expected dict, got str"),
    ("42", "lock: expected dict, got int"),
    ('{"packages": []}', "lock: missing field format"),
    ('{"format": 1}', "lock: missing field architecture"),
    (_without("format"), "lock: missing field format"),
    (_without("packages"), "lock: missing field packages"),
    (_without("requested"), "lock: missing field requested"),
    (_without("repositories"), "lock: missing field repositories"),
    (_with(format="1"), "lock.format: expected int, got str"),
    (_with(format=True), "lock.format: expected an integer, got True"),
    (_with(packages={}), "lock.packages: expected list, got dict"),
    (_with(packages=["bash"]), "lock.packages[0]: expected dict, got str"),
    (_with(packages=[None]), "lock.packages[0]: expected dict, got NoneType"),
    (_with(packages=[{"name": "a", "version": "1"}]), "lock.packages[0]: missing field architecture"),
    (_with(packages=[{"version": "1", "sha256": "00"}]), "lock.packages[0]: missing field name"),
    (_package(size="1234"), "lock.packages[0].size: expected int, got str"),
    (_package(origin="debian"), "lock.packages[0]: unknown field(s) origin"),
    (_with(requested="bash"), "lock.requested: expected list, got str"),
    (_with(surprise=1), "lock: unknown field(s) surprise"),
])
@pytest.mark.parametrize("required", [True, False])
def test_malformed_lock(lock_file: Path, text: str, reason: str, required: bool) -> None:
    lock_file.write_text(text)
    with pytest.raises(LockError) as caught:
        load_lock(lock_file, required=required)
    message = str(caught.value)
    assert message.startswith(f"{lock_file}: not a liveorch lock file (format {LOCK_FORMAT}): "), message
    assert reason in message
    assert caught.value.hint == "re-create it with --update-lock"
    assert caught.value.exit_code == 5


@pytest.mark.parametrize("required", [True, False])
def test_other_lock_format_is_refused(lock_file: Path, required: bool) -> None:
    lock_file.write_text(_with(format=LOCK_FORMAT + 1))
    with pytest.raises(LockError) as caught:
        load_lock(lock_file, required=required)
    assert str(caught.value) == f"{lock_file}: not a liveorch lock file (format {LOCK_FORMAT})"
    assert caught.value.hint == "re-create it with --update-lock"


def test_non_utf8_lock_is_malformed(lock_file: Path) -> None:
    lock_file.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LockError, match="not a liveorch lock file"):
        load_lock(lock_file, required=False)


def test_valid_lock(lock_file: Path) -> None:
    lock = make_lock(["bash", "dracut"], repositories=[DEBIAN, SECURITY], requested=["dracut"])
    lock_file.write_text(json.dumps(lock_json(lock), indent=1, sort_keys=True))
    loaded = load_lock(lock_file, required=True)
    assert loaded == lock
    assert isinstance(loaded, Lock)
    assert loaded.packages[0] == entry("bash")
    assert loaded.repositories[1].components == ("main",)
    assert load_lock(lock_file, required=False) == lock


def test_empty_package_list_is_a_valid_lock(lock_file: Path) -> None:
    lock = make_lock([], repositories=[])
    lock_file.write_text(json.dumps(lock_json(lock)))
    loaded = load_lock(lock_file, required=True)
    assert loaded == lock
    assert loaded is not None and loaded.packages == ()


def test_lock_without_trust_decisions_is_upgraded(lock_file: Path) -> None:
    """Locks written before trust was recorded: file:// was local and trusted, the rest neither."""
    data = lock_json(make_lock(["bash"], repositories=[DEBIAN, LOCAL]))
    for repository in data["repositories"]:
        del repository["trusted"]
        del repository["local"]
    lock_file.write_text(json.dumps(data))
    loaded = load_lock(lock_file, required=True)
    assert loaded is not None
    assert [(r.alias, r.local, r.trusted) for r in loaded.repositories] == [("debian", False, False),
                                                                            ("local", True, True)]


def test_recorded_trust_decisions_are_kept(lock_file: Path) -> None:
    lock = dataclasses.replace(make_lock(["bash"]), repositories=(locked(DEBIAN, trusted=True),))
    lock_file.write_text(json.dumps(lock_json(lock)))
    loaded = load_lock(lock_file, required=True)
    assert loaded is not None
    assert (loaded.repositories[0].trusted, loaded.repositories[0].local) == (True, False)


def test_lock_path_beside_the_description_or_explicit(write_description, tmp_path: Path) -> None:
    description = parse_description(write_description())
    assert lock_path(description, None) == tmp_path / "unit-live.lock"
    explicit = tmp_path / "elsewhere.lock"
    assert lock_path(description, explicit) == explicit


# --- check_lock ---------------------------------------------------------------------------------


def plan_repositories(*repositories: dict[str, Any]) -> tuple[AptRepository, ...]:
    """Repositories as the plan's resolve options have them."""
    return tuple(AptRepository(url=r["url"], suite=r["suite"], components=tuple(r["components"]), alias=r["alias"],
                               trusted=False, signing_keys=()) for r in repositories)


def check_message(lock: Lock, requested: tuple[str, ...], repositories: tuple[AptRepository, ...],
                  path: Path = Path("/x/unit-live.lock")) -> str:
    with pytest.raises(LockError) as caught:
        check_lock(path, lock, requested, repositories)
    message = str(caught.value)
    assert message.startswith(f"{path}: the lock does not match the description: "), message
    assert caught.value.hint == "run with --update-lock to resolve anew"
    return message


def test_matching_lock_passes() -> None:
    lock = make_lock(["bash", "dracut", "libc6"], requested=["dracut", "bash"])
    check_lock(Path("x.lock"), lock, ("bash", "dracut"), plan_repositories(DEBIAN))


def test_closure_packages_need_not_be_requested() -> None:
    # Dependencies are locked without being requested; only the "requested" list counts as dropped.
    lock = make_lock(["bash", "libc6", "libtinfo6"], requested=["bash"])
    check_lock(Path("x.lock"), lock, ("bash",), plan_repositories(DEBIAN))


def test_trailing_slash_in_url_does_not_matter() -> None:
    lock = make_lock(["bash"], repositories=[{**DEBIAN, "url": DEBIAN["url"] + "/"}])
    check_lock(Path("x.lock"), lock, ("bash",), plan_repositories(DEBIAN))
    lock = make_lock(["bash"])
    check_lock(Path("x.lock"), lock, ("bash",), plan_repositories({**DEBIAN, "url": DEBIAN["url"] + "/"}))


def test_repository_order_does_not_matter() -> None:
    lock = make_lock(["bash"], repositories=[SECURITY, DEBIAN])
    check_lock(Path("x.lock"), lock, ("bash",), plan_repositories(DEBIAN, SECURITY))


def test_missing_requested_packages_are_listed() -> None:
    lock = make_lock(["bash", "dracut"])
    message = check_message(lock, ("zsh", "bash", "vim", "dracut"), plan_repositories(DEBIAN))
    assert message.endswith("not in the lock: vim, zsh")


def test_dropped_packages_are_listed() -> None:
    lock = make_lock(["bash", "dracut", "less", "nano"], requested=["bash", "dracut", "less", "nano"])
    message = check_message(lock, ("bash", "dracut"), plan_repositories(DEBIAN))
    assert message.endswith("locked but no longer requested: less, nano")
    assert "not in the lock" not in message


def test_nothing_is_dropped_when_the_lock_requested_nothing() -> None:
    # Every lock records what was requested; an empty list leaves nothing to drop.
    lock = make_lock(["bash", "dracut", "less"], requested=[])
    check_lock(Path("x.lock"), lock, ("bash",), plan_repositories(DEBIAN))


def test_differing_repositories_are_listed() -> None:
    lock = make_lock(["bash"], repositories=[DEBIAN])
    other = {**SECURITY}
    message = check_message(lock, ("bash",), plan_repositories(DEBIAN, other))
    assert "repositories differ" in message
    assert ("(lock: [('http://deb.debian.org/debian', 'bookworm')], description: "
            "[('http://deb.debian.org/debian', 'bookworm'), "
            "('http://deb.debian.org/debian-security', 'bookworm-security')])") in message


def test_different_suite_is_a_repository_difference() -> None:
    lock = make_lock(["bash"], repositories=[DEBIAN])
    message = check_message(lock, ("bash",), plan_repositories({**DEBIAN, "suite": "trixie"}))
    assert "lock: [('http://deb.debian.org/debian', 'bookworm')]" in message
    assert "description: [('http://deb.debian.org/debian', 'trixie')]" in message


def test_lock_without_repositories_differs() -> None:
    lock = make_lock(["bash"], repositories=[])
    message = check_message(lock, ("bash",), plan_repositories(DEBIAN))
    assert "repositories differ (lock: [], description: [('http://deb.debian.org/debian', 'bookworm')])" in message


def test_all_problems_in_one_message() -> None:
    lock = make_lock(["bash", "nano"], repositories=[SECURITY], requested=["bash", "nano"])
    message = check_message(lock, ("bash", "vim"), plan_repositories(DEBIAN))
    problems = message.split(": the lock does not match the description: ", 1)[1].split("; ")
    assert problems[0] == "not in the lock: vim"
    assert problems[1] == "locked but no longer requested: nano"
    assert problems[2].startswith("repositories differ (lock: [('http://deb.debian.org/debian-security'")
    assert len(problems) == 3


def test_loaded_lock_checks_against_a_plan(write_description, tmp_path: Path) -> None:
    description = parse_description(write_description())
    resolve = make_plan(description).options["resolve"]
    path = lock_path(description, None)
    lock = make_lock([*resolve.packages, "libc6"], repositories=[DEBIAN], requested=sorted(resolve.packages))
    path.write_text(json.dumps(lock_json(lock)))
    loaded = load_lock(path, required=True)
    assert loaded == lock
    check_lock(path, loaded, resolve.packages, resolve.repositories)
    with pytest.raises(LockError, match="not in the lock: ca-certificates"):
        check_lock(path, loaded, (*resolve.packages, "ca-certificates"), resolve.repositories)


def test_malformed_repository_entry_is_a_lock_error(lock_file: Path) -> None:
    data = lock_json(make_lock(["bash"]))
    data["repositories"] = [{"url": DEBIAN["url"]}]
    lock_file.write_text(json.dumps(data))
    with pytest.raises(LockError, match=r"lock\.repositories\[0\]: missing field alias"):
        load_lock(lock_file, required=True)
