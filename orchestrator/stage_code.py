"""Which files of liveorch.stages each stage runs: its image carries those, its cache key
covers those, and nothing else.

The set is found by following the stage's imports from its entry points (the runner, the
stage module, its contract) within liveorch.stages, plus the data folders its contract
declares. An edit to grub_config.py therefore reruns the iso stage (and, through the ISO's
new bytes, checksum) but no other.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from liveorch import stages
from liveorch.stages.contract import StageSpec

PACKAGE = "liveorch.stages"
STAGES_DIR = Path(stages.__file__).resolve().parent


def _module_file(module: str) -> Path | None:
    """The file of a liveorch.stages module (a package's __init__.py), if it is one of ours."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[2:]
    base = STAGES_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Modules a file imports (absolute names; `from pkg import mod` yields pkg.mod too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _with_parents(module: str) -> list[str]:
    """A module and the packages Python imports first to reach it."""
    parts = module.split(".")
    return [".".join(parts[:depth]) for depth in range(2, len(parts) + 1)]


@functools.cache
def code_files(spec: StageSpec) -> dict[str, Path]:
    """Path relative to stages/ -> file, for everything this stage's container runs."""
    pending = [f"{PACKAGE}.__main__", f"{PACKAGE}.runner", f"{PACKAGE}.{spec.name}",
               f"{PACKAGE}.contracts.{spec.name}"]
    seen: set[str] = set()
    found: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        for name in _with_parents(module):
            if name in seen:
                continue
            seen.add(name)
            path = _module_file(name)
            if path is not None:
                found[path.relative_to(STAGES_DIR).as_posix()] = path
                pending.extend(_imports(path))
    for folder in spec.data:
        for path in sorted((STAGES_DIR / folder).rglob("*")):
            if path.is_file():
                found[path.relative_to(STAGES_DIR).as_posix()] = path
    return dict(sorted(found.items()))
