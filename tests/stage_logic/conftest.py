"""Shared fixtures for the stage-logic tests: each stage's code runs on the host, on a small
fake tree, with its tools replaced by a recorder.

Modelled on osbuild's stage tests: a `Workspace` under tmp_path stands in for the
container's /store and /work, `publish` puts a fake store entry (files plus the
publisher's record.json) where `Workspace.input` finds it, and `commands` replaces the
`run` every stage module imports, so no tool of the stage images (tar2sqfs, xorriso,
grub-mkimage, mmdebstrap, dracut, isomd5sum, apt) is needed. Where a tool would write a
file that the stage reads afterwards, the recorder writes a small placeholder instead.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from liveorch import stages
from liveorch.stages import tools
from liveorch.stages.contract import Artifact, Record, StageRequest, Workspace
from liveorch.stages.contracts.rootfs import AptSource, RootfsOptions, User

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
EPOCH = 1_700_000_000  # 2023-11-14 22:13:20 UTC, day 19675
FAKE_VERSION = "0.0-test"
# Every module of the stage code that may import `run`, `capture` or `package_version` by name.
# Every module of liveorch.stages but the contract and the runner: where a stage may have
# imported `run`, `capture` or `package_version` by name (a new stage is found too).
STAGE_MODULES = tuple(sorted(
    module.name for module in pkgutil.iter_modules(stages.__path__)
    if module.name not in ("contract", "runner", "limits", "__main__") and not module.ispkg))


@dataclass
class Call:
    """One recorded tool run: argv as strings, and what it was given."""

    argv: list[str]
    cwd: Path | None
    env: dict[str, str] | None
    stdin: bytes | None
    stdin_name: str | None
    stdout_name: str | None
    what: str | None


Handler = Callable[[Call, Any], None]


def _after(argv: list[str], flag: str) -> Path:
    return Path(argv[argv.index(flag) + 1])


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def _chroot_output(call: Call) -> None:
    """dracut writes its image inside the root: chroot ROOT dracut ... /tmp/initrd.img."""
    target = Path(call.argv[1]) / call.argv[-1].lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"fake initramfs\n")


def _write_stdout(call: Call, stdout: Any) -> None:
    if stdout is not None and hasattr(stdout, "write"):
        stdout.write("# fake " + " ".join(call.argv) + "\n")


# What a tool leaves behind that the stage reads afterwards: tool name -> placeholder maker.
DEFAULT_HANDLERS: dict[str, Handler] = {
    "tar2sqfs": lambda call, _: Path(call.argv[-1]).write_bytes(b"hsqs fake squashfs\n"),
    "grub-mkimage": lambda call, _: _after(call.argv, "--output").write_bytes(
        f"fake grub core {call.argv[call.argv.index('--format') + 1]}\n".encode()),
    "mkfs.fat": lambda call, _: Path(call.argv[-2]).write_bytes(b"fake FAT image\n"),
    "xorriso": lambda call, _: _after(call.argv, "-output").write_bytes(b"fake ISO 9660 image\n"),
    "implantisomd5": lambda call, _: _append(Path(call.argv[-1]), b"implanted md5\n"),
    "apt-ftparchive": _write_stdout,
    "dracut": lambda call, _: _chroot_output(call),
}


class Commands:
    """Stands in for `liveorch.stages.tools.run`: records every call instead of running it."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.handlers: dict[str, Handler] = dict(DEFAULT_HANDLERS)
        self.versions: list[tuple[str, ...]] = []
        self.version = FAKE_VERSION

    @property
    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]

    def tool_calls(self, tool: str) -> list[list[str]]:
        return [call.argv for call in self.calls if self.tool(call.argv) == tool]

    @staticmethod
    def tool(argv: list[str]) -> str:
        """The tool a command line runs: the one after `chroot ROOT` when chrooted."""
        return argv[2] if argv[0] == "chroot" and len(argv) > 2 else argv[0]

    def on(self, tool: str, handler: Handler) -> None:
        self.handlers[tool] = handler

    def __call__(self, argv: Any, *, env: Any = None, cwd: Path | None = None, stdin: Any = None,
                 stdout: Any = None, what: str | None = None, watch: Any = None) -> None:
        args = [str(a) for a in argv]
        data = stdin.read() if stdin is not None and hasattr(stdin, "read") else None
        call = Call(argv=args, cwd=cwd, env=dict(env) if env is not None else None, stdin=data,
                    stdin_name=getattr(stdin, "name", None), stdout_name=getattr(stdout, "name", None), what=what)
        self.calls.append(call)
        handler = self.handlers.get(self.tool(args))
        if handler is not None:
            handler(call, stdout)

    def package_version(self, *packages: str) -> dict[str, str]:
        self.versions.append(packages)
        return {package: FAKE_VERSION for package in packages}


def _no_capture(argv: Any, **_: Any) -> str:
    raise AssertionError(f"a stage-logic test ran a real tool through capture: {argv!r}")


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Commands:
    """Every stage module's `run` records instead of running; `package_version` gives
    FAKE_VERSION; `capture` (which would run dpkg-query or apt on the host) fails the test."""
    recorder = Commands()
    replacements = {"run": (tools.run, recorder), "package_version": (tools.package_version, recorder.package_version),
                    "capture": (tools.capture, _no_capture)}
    for name in STAGE_MODULES:
        module = importlib.import_module(f"liveorch.stages.{name}")
        for attribute, (original, replacement) in replacements.items():
            if getattr(module, attribute, None) is original:
                monkeypatch.setattr(module, attribute, replacement)
    return recorder


def make_workspace(base: Path) -> Workspace:
    workspace = Workspace(store=base / "store", work=base / "work")
    workspace.store.mkdir(parents=True, exist_ok=True)
    workspace.out.mkdir(parents=True, exist_ok=True)
    workspace.tmp.mkdir(parents=True, exist_ok=True)
    return workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


@pytest.fixture
def new_workspace(tmp_path: Path) -> Callable[[str], Workspace]:
    """Further workspaces, each in its own folder of tmp_path."""
    return lambda name: make_workspace(tmp_path / name)


def publish_entry(store: Path, stage: str, key: str, files: dict[str, bytes]) -> Path:
    """A published store entry: the files, and the publisher's record.json listing them."""
    entry = store / stage / key
    for name, data in files.items():
        (entry / name).parent.mkdir(parents=True, exist_ok=True)
        (entry / name).write_bytes(data)
    entry.mkdir(parents=True, exist_ok=True)
    outputs = {name: Artifact(size=len(data), sha256=hashlib.sha256(data).hexdigest())
               for name, data in sorted(files.items())}
    record = Record(stage=stage, key=key, outputs=outputs, tools={}, facts={}, seconds=0.0)
    (entry / "record.json").write_text(record.to_json())
    return entry


@pytest.fixture
def publish(workspace: Workspace) -> Callable[..., Path]:
    """publish(stage, {name: bytes}, key=..., store=...) -> the entry's directory."""

    def make(stage: str, files: dict[str, bytes], key: str | None = None, store: Path | None = None) -> Path:
        return publish_entry(store or workspace.store, stage, key or f"{stage}-key", files)

    return make


def stage_request(stage: str, options: Any, inputs: dict[str, str] | None = None, epoch: int = EPOCH,
                  key: str | None = None, threads: int = 1) -> StageRequest:
    return StageRequest(stage=stage, key=key or f"{stage}-key", source_date_epoch=epoch,
                        inputs=dict(inputs or {}), options=options, threads=threads)


@pytest.fixture
def epoch() -> int:
    """The SOURCE_DATE_EPOCH `make_request` puts into requests unless told otherwise."""
    return EPOCH


@pytest.fixture
def make_request() -> Callable[..., StageRequest]:
    return stage_request


@pytest.fixture(scope="session")
def example_plan() -> Any:
    """The bundled example's plan, made once (hashing its password takes a moment)."""
    from liveorch.orchestrator.description import parse_description
    from liveorch.orchestrator.plan import make_plan

    return make_plan(parse_description(EXAMPLE))


@pytest.fixture
def rootfs_options() -> RootfsOptions:
    """rootfs options with a second user, a kept repository, a serial console and UTC."""
    return RootfsOptions(
        suite="bookworm",
        hostname="unit-live",
        locale="en_US",
        keytable="de",
        timezone="UTC",
        generate_locales=(),  # the tests of locale_data give their own
        users=(
            User(name="root", password_hash="$6$saltsalt$rootHASH/with.dots", home="/root", shell=None,
                 groups=("root",), id=None, realname=None),
            User(name="alice", password_hash="$y$j9T$alicesalt$aliceHASH", home="/home/alice", shell="/bin/bash",
                 groups=("audio", "video"), id=1001, realname="Alice Liddell"),
        ),
        serial_console="ttyS0",
        image_sources=(AptSource(url="http://deb.debian.org/debian", suite="bookworm",
                                 components=("main", "contrib")),),
        payload_sha256=None,
        archives=(),
        delete_packages=(),
        profile={},
        hook_timeout=60,
    )


@pytest.fixture
def runner_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """runner.execute sets SOURCE_DATE_EPOCH, TZ and the umask for the whole process: put them back."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
