"""The contract between the orchestrator and the stage containers, and how it travels.

Both sides import this module and the stage's own contract (`stages/contracts/<stage>.py`);
nothing else crosses the line. A stage is a pure function of its request (typed options,
the build's SOURCE_DATE_EPOCH, the keys of its inputs) and of its inputs' bytes, so
everything it may depend on is in the request, and everything a later step may rely on is
in the record the trusted publisher writes beside its outputs.

What a stage container sees (the `Workspace`):
    /store (read-only)   published results: /store/<stage>/<key>/<output>, the package pool
    /work  (read-write)  this run's scratch volume: request.json, out/, tmp/, files/, result.json
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

STORE_MOUNT = "/store"
WORK_MOUNT = "/work"
REQUEST_FILE = "request.json"
CLAIMS_FILE = "result.json"
RECORD_FILE = "record.json"
# The line a stage prints for a failure the user can act on; the orchestrator shows it.
ERROR_PREFIX = "liveorch-stage-error: "
# The package pool in the store: every .deb any resolution downloaded, named by its sha256.
POOL_DIR = "pool"
# What a stage may claim about its run (tools, facts) is small; the publisher refuses more.
MAX_CLAIMS_BYTES = 1 << 20
UNPRIVILEGED_UID = 1000


class ContractError(ValueError):
    """A request, options object or record that does not fit its declared type."""


def canonical_json(value: Any) -> str:
    """JSON with a single spelling per value, so that hashing it is meaningful."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- typed values to and from JSON ------------------------------------------------------

def encode(value: Any) -> Any:
    """A typed value (dataclasses, enums, tuples, dicts) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(kind: Any, data: Any, where: str = "options") -> Any:
    """JSON data as `kind`, refusing what does not fit: unknown or missing fields, wrong types."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return data
    if origin in (types.UnionType, typing.Union):
        return _decode_union(kind, data, where)
    if dataclasses.is_dataclass(kind):
        return _decode_dataclass(kind, data, where)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise ContractError(f"{where}: {data!r} is not one of {choices}") from None
    if origin is tuple:
        return tuple(decode(typing.get_args(kind)[0], item, f"{where}[{i}]")
                     for i, item in enumerate(_expect(list, data, where)))
    if origin is dict:
        value_kind = typing.get_args(kind)[1]
        return {_expect(str, k, where): decode(value_kind, v, f"{where}.{k}")
                for k, v in _expect(dict, data, where).items()}
    return _decode_scalar(kind, data, where)


def _decode_union(kind: Any, data: Any, where: str) -> Any:
    members = typing.get_args(kind)
    if data is None and type(None) in members:
        return None
    errors = []
    for member in members:
        if member is type(None):
            continue
        try:
            return decode(member, data, where)
        except ContractError as error:
            errors.append(str(error))
    raise ContractError(errors[0] if errors else f"{where}: {data!r} does not fit")


def _decode_dataclass(kind: Any, data: Any, where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    data = _expect(dict, data, where)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(kind)
    values = {}
    for name, spec in fields.items():
        if name not in data:
            if spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING:
                continue
            raise ContractError(f"{where}: missing field {name}")
        values[name] = decode(hints[name], data[name], f"{where}.{name}")
    return kind(**values)


def _decode_scalar(kind: Any, data: Any, where: str) -> Any:
    if kind is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if kind is int and isinstance(data, bool):
        raise ContractError(f"{where}: expected an integer, got {data!r}")
    return _expect(kind, data, where)


def _expect(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, kind):
        raise ContractError(f"{where}: expected {kind.__name__}, got {type(data).__name__}")
    return data


# --- what a stage is --------------------------------------------------------------------

@dataclass(frozen=True)
class Output:
    """One declared output: a file, or (name ending in /) a directory of files.

    `export` names the file in the target directory (`{image}`: the image name,
    `{basename}`: name.arch-version, `{iso}`: the ISO's name); where several stages export
    one name, the later stage's file wins (the checksum stage's ISO with its MD5 implanted).
    """

    name: str
    optional: bool = False
    export: str | None = None

    @property
    def is_tree(self) -> bool:
        return self.name.endswith("/")

    def covers(self, path: str) -> bool:
        return path.startswith(self.name) if self.is_tree else path == self.name


@dataclass(frozen=True)
class StageSpec:
    """Everything the orchestrator needs to run a stage and trust its outputs.

    `inputs` are earlier stages whose outputs it reads; `capabilities` the only ones it
    keeps of the engine's defaults; `user` the uid it runs as; `pooled` an output
    directory whose files the publisher also adds to the package pool; `data` files of the
    stage's code besides Python modules (the image carries them, the cache key covers them).
    """

    name: str
    summary: str
    options: type
    inputs: tuple[str, ...]
    outputs: tuple[Output, ...]
    capabilities: tuple[str, ...]
    user: int
    network: bool = False
    pooled: str | None = None
    data: tuple[str, ...] = ()
    # Its claim on the CPU when it runs beside other stages: the heaviest one present gets a
    # thread for every core, the others a share by weight (StageRequest.threads).
    cpu_weight: int = 1

    def output(self, name: str) -> Output:
        return next(o for o in self.outputs if o.name == name)

    def undeclared(self, paths: typing.Iterable[str]) -> list[str]:
        return sorted(p for p in paths if not any(o.covers(p) for o in self.outputs))

    def missing(self, paths: typing.Iterable[str]) -> list[str]:
        present = list(paths)
        return [o.name for o in self.outputs if not o.optional and not any(o.covers(p) for p in present)]


# --- request, claims and record ---------------------------------------------------------

# How a stage reports how far it is inside a long step: a log line
# "liveorch-progress: <percent> <what>", which the orchestrator shows as the stage's progress.
PROGRESS_PREFIX = "liveorch-progress: "


def progress_line(percent: float, detail: str) -> str:
    return f"{PROGRESS_PREFIX}{min(max(percent, 0.0), 100.0):.0f} {detail}"


def parse_progress(line: str) -> tuple[float, str] | None:
    """(percent, what) from a progress line; None for any other line or a malformed one."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    number, _, detail = line[len(PROGRESS_PREFIX):].partition(" ")
    try:
        percent = float(number)
    except ValueError:
        return None
    return (percent, detail.strip()) if 0.0 <= percent <= 100.0 else None


@dataclass(frozen=True)
class StageRequest:
    """What a stage is asked to do: its typed options, and the keys of its inputs' entries.

    `threads` is the stage's CPU budget for this run (the cores the engine has, shared with
    the stages running beside it). It is not an input: the cache key leaves it out, so a stage
    may use it only where the thread count cannot change the bytes (tar2sqfs's block
    processor writes the same image with any number of jobs)."""

    stage: str
    key: str
    source_date_epoch: int
    inputs: dict[str, str]
    options: Any
    threads: int = 1

    def to_json(self) -> str:
        return json.dumps(encode(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, spec: StageSpec) -> StageRequest:
        """Strict on both sides: the orchestrator's and the stage's copy of the contract
        must agree field for field, or the stage refuses to run."""
        data = _expect(dict, json.loads(text), "request")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ContractError(f"request: unknown field(s) {', '.join(unknown)}")
        if data.get("stage") != spec.name:
            raise ContractError(f"request is for stage {data.get('stage')!r}, this image runs {spec.name!r}")
        inputs = decode(dict[str, str], data.get("inputs"), "request.inputs")
        if sorted(inputs) != sorted(spec.inputs):
            raise ContractError(f"request.inputs: expected {', '.join(spec.inputs) or 'none'}")
        threads = decode(int, data.get("threads"), "request.threads")
        if threads < 1:
            raise ContractError(f"request.threads: expected at least 1, got {threads}")
        return cls(stage=spec.name, key=decode(str, data.get("key"), "request.key"),
                   source_date_epoch=decode(int, data.get("source_date_epoch"), "request.source_date_epoch"),
                   inputs=inputs, options=decode(spec.options, data.get("options"), "options"), threads=threads)


@dataclass(frozen=True)
class Artifact:
    size: int
    sha256: str


@dataclass(frozen=True)
class StageClaims:
    """What a stage says about its run besides its files: tool versions and small facts
    (resolve's SOURCE_DATE_EPOCH, the kernel version). Untrusted until published."""

    tools: dict[str, str]
    facts: dict[str, Any]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(encode(self), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Record:
    """The publisher's record of one store entry: the sha256 of every output, which it
    computed itself while copying them in. A cache hit is trusted only once the entry's
    files hash to these values again."""

    stage: str
    key: str
    outputs: dict[str, Artifact]
    tools: dict[str, str]
    facts: dict[str, Any]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(encode(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        return decode(cls, json.loads(text), "record")

    def digest(self) -> str:
        """Identity of the outputs, independent of timing: feeds later stages' keys."""
        return sha256_text(canonical_json({n: encode(a) for n, a in sorted(self.outputs.items())}))


# --- where things are -------------------------------------------------------------------

@dataclass(frozen=True)
class Workspace:
    """The paths a stage works with; injected, so stage logic runs on a fake tree in tests."""

    store: Path = Path(STORE_MOUNT)
    work: Path = Path(WORK_MOUNT)
    IN_CONTAINER: ClassVar[tuple[str, str]] = (STORE_MOUNT, WORK_MOUNT)

    @property
    def request(self) -> Path:
        return self.work / REQUEST_FILE

    @property
    def claims(self) -> Path:
        return self.work / CLAIMS_FILE

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def tmp(self) -> Path:
        return self.work / "tmp"

    @property
    def files(self) -> Path:
        """Host files handed to this run only (the description payload)."""
        return self.work / "files"

    @property
    def pool(self) -> Path:
        return self.store / POOL_DIR

    def input(self, request: StageRequest, stage: str) -> Path:
        return entry_path(self.store, stage, request.inputs[stage])


def entry_path(store: Path | PurePosixPath, stage: str, key: str) -> Any:
    """A published entry's directory: content-addressed by stage and key."""
    return store / stage / key


@dataclass
class Outcome:
    """What a stage's `execute` returns besides its output files."""

    tools: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
