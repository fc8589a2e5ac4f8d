"""Every stage's contract, found in liveorch.stages.contracts, in the order they run.

A new stage needs no line here: its contract module is found, and its place follows from
the inputs it declares (a stage runs after every stage it reads; where the declarations
leave a choice, consumers' input order decides, so squashfs runs before initrd because the
iso stage lists it first).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from liveorch.stages import contracts
from liveorch.stages.contract import StageSpec


@functools.cache
def stage_specs() -> dict[str, StageSpec]:
    """name -> spec, in running order."""
    found: dict[str, StageSpec] = {}
    for module in pkgutil.iter_modules(contracts.__path__):
        spec = getattr(importlib.import_module(f"{contracts.__name__}.{module.name}"), "SPEC", None)
        if isinstance(spec, StageSpec):
            found[spec.name] = spec
    return {name: found[name] for name in _running_order(found)}


def _running_order(specs: dict[str, StageSpec]) -> list[str]:
    """Depth-first from the stages nobody reads (sorted), inputs in their declared order."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting or name not in specs:
            raise ValueError(f"stage contracts: {name!r} is part of a cycle or is not declared")
        visiting.add(name)
        for source in specs[name].inputs:
            visit(source)
        visiting.discard(name)
        order.append(name)

    consumed = {source for spec in specs.values() for source in spec.inputs}
    for sink in sorted(set(specs) - consumed):
        visit(sink)
    return order


def stage_names() -> tuple[str, ...]:
    return tuple(stage_specs())


def spec_of(stage: str) -> StageSpec:
    return stage_specs()[stage]
