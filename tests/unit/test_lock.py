"""The lock file: loading (missing, malformed, valid) and checking it against the description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import LiveorchError
from liveorch.orchestrator.lock import LOCK_FORMAT, LockError, check_lock, load_lock, lock_path
from liveorch.orchestrator.plan import make_plan

DEBIAN = {"alias": "debian", "url": "http://deb.debian.org/debian", "suite": "bookworm", "components": ["main"]}
SECURITY = {"alias": "security", "url": "http://deb.debian.org/debian-security", "suite": "bookworm-security",
            "components": ["main"]}


def entry(name: str, version: str = "1.0-1") -> dict[str, Any]:
    return {"name": name, "version": version, "sha256": "ab" * 32, "repository": "debian"}


def make_lock(names: list[str], repositories: list[dict[str, Any]] | None = None,
              requested: list[str] | None = None) -> dict[str, Any]:
    lock: dict[str, Any] = {"format": LOCK_FORMAT, "packages": [entry(n) for n in names],
                            "repositories": [DEBIAN] if repositories is None else repositories}
    if requested is not None:
        lock["requested"] = requested
    return lock


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


@pytest.mark.parametrize("text", [
    "{not json",
    "",
    "null",
    "[]",
    '"a string"',
    "42",
    '{"packages": []}',
    '{"format": 2, "packages": []}',
    '{"format": "1", "packages": []}',
    '{"format": 1}',
    '{"format": 1, "packages": {}}',
    '{"format": 1, "packages": [{"name": "a", "version": "1"}]}',
    '{"format": 1, "packages": [{"version": "1", "sha256": "00"}]}',
    '{"format": 1, "packages": ["bash"]}',
    '{"format": 1, "packages": [null]}',
])
@pytest.mark.parametrize("required", [True, False])
def test_malformed_lock(lock_file: Path, text: str, required: bool) -> None:
    lock_file.write_text(text)
    with pytest.raises(LockError) as caught:
        load_lock(lock_file, required=required)
    assert str(caught.value) == f"{lock_file}: not a liveorch lock file (format {LOCK_FORMAT})"
    assert caught.value.hint == "re-create it with --update-lock"


def test_non_utf8_lock_is_malformed(lock_file: Path) -> None:
    lock_file.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LockError, match="not a liveorch lock file"):
        load_lock(lock_file, required=False)


def test_valid_lock(lock_file: Path) -> None:
    lock = make_lock(["bash", "dracut"], requested=["dracut"])
    lock_file.write_text(json.dumps(lock, indent=1))
    assert load_lock(lock_file, required=True) == lock
    assert load_lock(lock_file, required=False) == lock


def test_empty_package_list_is_a_valid_lock(lock_file: Path) -> None:
    lock_file.write_text('{"format": 1, "packages": []}')
    assert load_lock(lock_file, required=True) == {"format": 1, "packages": []}


def test_lock_path_beside_the_description_or_explicit(write_description, tmp_path: Path) -> None:
    description = parse_description(write_description())
    assert lock_path(description, None) == tmp_path / "unit-live.lock"
    explicit = tmp_path / "elsewhere.lock"
    assert lock_path(description, explicit) == explicit


# --- check_lock ---------------------------------------------------------------------------------


def plan_repositories(*repositories: dict[str, Any]) -> list[dict[str, Any]]:
    """Repositories as the plan's resolve options have them."""
    return [{"url": r["url"], "suite": r["suite"], "components": r["components"], "alias": r["alias"],
             "trusted": False} for r in repositories]


def check_message(lock: dict[str, Any], requested: list[str], repositories: list[dict[str, Any]],
                  path: Path = Path("/x/unit-live.lock")) -> str:
    with pytest.raises(LockError) as caught:
        check_lock(path, lock, requested, repositories)
    message = str(caught.value)
    assert message.startswith(f"{path}: the lock does not match the description: "), message
    assert caught.value.hint == "run with --update-lock to resolve anew"
    return message


def test_matching_lock_passes() -> None:
    lock = make_lock(["bash", "dracut", "libc6"], requested=["dracut", "bash"])
    check_lock(Path("x.lock"), lock, ["bash", "dracut"], plan_repositories(DEBIAN))


def test_closure_packages_need_not_be_requested() -> None:
    # Dependencies are locked without being requested; only the "requested" list counts as dropped.
    lock = make_lock(["bash", "libc6", "libtinfo6"])
    check_lock(Path("x.lock"), lock, ["bash"], plan_repositories(DEBIAN))


def test_trailing_slash_in_url_does_not_matter() -> None:
    lock = make_lock(["bash"], repositories=[{**DEBIAN, "url": DEBIAN["url"] + "/"}])
    check_lock(Path("x.lock"), lock, ["bash"], plan_repositories(DEBIAN))


def test_repository_order_does_not_matter() -> None:
    lock = make_lock(["bash"], repositories=[SECURITY, DEBIAN])
    check_lock(Path("x.lock"), lock, ["bash"], plan_repositories(DEBIAN, SECURITY))


def test_missing_requested_packages_are_listed() -> None:
    lock = make_lock(["bash", "dracut"])
    message = check_message(lock, ["zsh", "bash", "vim", "dracut"], plan_repositories(DEBIAN))
    assert message.endswith("not in the lock: vim, zsh")


def test_dropped_packages_are_listed_when_the_lock_has_requested() -> None:
    lock = make_lock(["bash", "dracut", "less", "nano"], requested=["bash", "dracut", "less", "nano"])
    message = check_message(lock, ["bash", "dracut"], plan_repositories(DEBIAN))
    assert message.endswith("locked but no longer requested: less, nano")
    assert "not in the lock" not in message


def test_no_dropped_check_without_requested() -> None:
    lock = make_lock(["bash", "dracut", "less"])
    check_lock(Path("x.lock"), lock, ["bash"], plan_repositories(DEBIAN))


def test_differing_repositories_are_listed() -> None:
    lock = make_lock(["bash"], repositories=[DEBIAN])
    other = {**SECURITY}
    message = check_message(lock, ["bash"], plan_repositories(DEBIAN, other))
    assert "repositories differ" in message
    assert ("(lock: [('http://deb.debian.org/debian', 'bookworm')], description: "
            "[('http://deb.debian.org/debian', 'bookworm'), "
            "('http://deb.debian.org/debian-security', 'bookworm-security')])") in message


def test_different_suite_is_a_repository_difference() -> None:
    lock = make_lock(["bash"], repositories=[DEBIAN])
    message = check_message(lock, ["bash"], plan_repositories({**DEBIAN, "suite": "trixie"}))
    assert "lock: [('http://deb.debian.org/debian', 'bookworm')]" in message
    assert "description: [('http://deb.debian.org/debian', 'trixie')]" in message


def test_lock_without_repositories_differs() -> None:
    lock = make_lock(["bash"])
    del lock["repositories"]
    message = check_message(lock, ["bash"], plan_repositories(DEBIAN))
    assert "repositories differ (lock: [], description: [('http://deb.debian.org/debian', 'bookworm')])" in message


def test_all_problems_in_one_message() -> None:
    lock = make_lock(["bash", "nano"], repositories=[SECURITY], requested=["bash", "nano"])
    message = check_message(lock, ["bash", "vim"], plan_repositories(DEBIAN))
    problems = message.split(": the lock does not match the description: ", 1)[1].split("; ")
    assert problems[0] == "not in the lock: vim"
    assert problems[1] == "locked but no longer requested: nano"
    assert problems[2].startswith("repositories differ (lock: [('http://deb.debian.org/debian-security'")
    assert len(problems) == 3


def test_loaded_lock_checks_against_a_plan(write_description, tmp_path: Path) -> None:
    description = parse_description(write_description())
    resolve = make_plan(description).options["resolve"]
    path = lock_path(description, None)
    lock = make_lock(resolve["packages"] + ["libc6"], repositories=[DEBIAN], requested=sorted(resolve["packages"]))
    path.write_text(json.dumps(lock))
    loaded = load_lock(path, required=True)
    assert loaded is not None
    check_lock(path, loaded, resolve["packages"], resolve["repositories"])
    with pytest.raises(LockError, match="not in the lock: ca-certificates"):
        check_lock(path, loaded, [*resolve["packages"], "ca-certificates"], resolve["repositories"])


def test_malformed_repository_entry_is_a_lock_error(lock_file: Path) -> None:
    lock = make_lock(["bash"], repositories=[{"url": DEBIAN["url"]}])
    lock_file.write_text(json.dumps(lock))
    with pytest.raises(LockError):
        loaded = load_lock(lock_file, required=True)
        assert loaded is not None
        check_lock(lock_file, loaded, ["bash"], plan_repositories(DEBIAN))
