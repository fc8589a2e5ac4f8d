"""Which of the container's limits a stage ran into, read from its own cgroup.

The orchestrator gives every stage container a memory and a process limit. When user code
(config.sh, a maintainer script, the image's dracut) hits one, what the stage sees is a
killed child or a failing fork, often far from the cause; the cgroup's event counters say
what happened, so the stage's error can name it ("out of memory", "too many processes").
Works with cgroup v1 and v2; where the counters are not visible (rootless engines without
delegated controllers) nothing is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _counter(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _limit(*paths: Path) -> str | None:
    for path in paths:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value and value != "max" and int(value) < (1 << 60):
            return value
    return None


@dataclass(frozen=True)
class LimitEvents:
    """How often the cgroup refused a fork, and how many processes it OOM-killed."""

    refused_forks: int
    oom_kills: int

    @classmethod
    def read(cls, root: Path = CGROUP) -> LimitEvents:
        forks = max(_counter(root / "pids/pids.events", "max"), _counter(root / "pids.events", "max"))
        kills = max(_counter(root / "memory/memory.oom_control", "oom_kill"),
                    _counter(root / "memory.events", "oom_kill"))
        return cls(forks, kills)

    def cause_since(self, earlier: LimitEvents, root: Path = CGROUP) -> str | None:
        """The limit hit since `earlier`, in words; None when none was."""
        if self.oom_kills > earlier.oom_kills:
            limit = _limit(root / "memory/memory.limit_in_bytes", root / "memory.max")
            shown = f" of {int(limit) >> 20} MiB" if limit else ""
            return f"out of memory (the memory limit{shown} was reached; --memory raises it)"
        if self.refused_forks > earlier.refused_forks:
            limit = _limit(root / "pids/pids.max", root / "pids.max")
            shown = f" of {limit}" if limit else ""
            return f"too many processes (the process limit{shown} was reached; --pids-limit raises it)"
        return None
