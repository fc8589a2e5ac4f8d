"""The timeline in report.html: one bar per stage on a shared time axis, as inline SVG.

Stages that ran side by side (squashfs and initrd) show as bars whose spans overlap; a
cached stage is a short hatched mark; the time before the first stage (stage images, the
store) and after the last (copying the results out) get bars of their own, since they too
make a build slow. A report from before liveorch recorded start times gets a timeline
estimated from each stage's duration and inputs, and says so.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from html import escape
from typing import Any

from liveorch.orchestrator.stage_specs import stage_specs

WIDTH = 960
LABEL_WIDTH = 120
RIGHT_MARGIN = 90
ROW_HEIGHT = 30
BAR_HEIGHT = 18
AXIS_HEIGHT = 28
MIN_BAR = 5  # px: a cached stage takes next to no time and must still be seen
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
MIN_GAP = 0.5  # s: shorter preparation or export time gets no bar


class BarKind(enum.StrEnum):
    RAN = "ran"
    CACHED = "cached"
    SETUP = "setup"
    EXPORT = "export"


@dataclass(frozen=True)
class Bar:
    label: str
    kind: BarKind
    start: float
    end: float
    note: str = ""

    def overlaps(self, other: Bar) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    total: float
    estimated: bool  # times derived from durations: the report has no start times


def _recorded(stages: list[dict[str, Any]]) -> bool:
    return bool(stages) and all(isinstance(s.get("started"), int | float) and isinstance(s.get("finished"), int | float)
                                for s in stages)


def _estimated_spans(stages: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each stage starts when its inputs are all there (the stage loop's rule); a stage this
    checkout does not know follows the one before it."""
    specs = stage_specs()
    spans: dict[str, tuple[float, float]] = {}
    previous = 0.0
    for stage in stages:
        name = stage["stage"]
        spec = specs.get(name)
        inputs = spec.inputs if spec is not None else ()
        start = max((spans[i][1] for i in inputs if i in spans), default=0.0 if spec is not None else previous)
        spans[name] = (start, start + float(stage.get("seconds") or 0.0))
        previous = spans[name][1]
    return spans


def _stage_bar(stage: dict[str, Any], span: tuple[float, float]) -> Bar:
    kind = BarKind.CACHED if stage.get("cached") else BarKind.RAN
    seconds = float(stage.get("seconds") or 0.0)
    note = "cached" if kind is BarKind.CACHED else f"{seconds:.1f} s"
    return Bar(str(stage["stage"]), kind, span[0], max(span[1], span[0]), note)


def build_timeline(record: dict[str, Any]) -> Timeline:
    stages = record.get("stages", [])
    recorded = _recorded(stages)
    if recorded:
        spans = {s["stage"]: (float(s["started"]), float(s["finished"])) for s in stages}
    else:
        spans = _estimated_spans(stages)
    bars = [_stage_bar(s, spans[s["stage"]]) for s in stages]
    end = max((b.end for b in bars), default=0.0)
    total = max(float(record.get("seconds") or 0.0), end)
    if recorded and bars:
        first = min(b.start for b in bars)
        if first >= MIN_GAP:
            bars.insert(0, Bar("preparation", BarKind.SETUP, 0.0, first, f"{first:.1f} s"))
        if total - end >= MIN_GAP:
            bars.append(Bar("export", BarKind.EXPORT, end, total, f"{total - end:.1f} s"))
    return Timeline(bars, total, not recorded)


def concurrent_with(timeline: Timeline, label: str) -> list[str]:
    """The stages that ran while this one did."""
    bar = next((b for b in timeline.bars if b.label == label), None)
    if bar is None or bar.kind is not BarKind.RAN:
        return []
    return [b.label for b in timeline.bars if b is not bar and b.kind is BarKind.RAN and b.overlaps(bar)]


def _tick_step(total: float) -> int:
    return next((step for step in TICK_STEPS if total / step <= 10), TICK_STEPS[-1])


def _axis(total: float, scale: float, top: int) -> list[str]:
    step = _tick_step(total)
    parts = [f'<line class="axis" x1="{LABEL_WIDTH}" y1="{top}" x2="{LABEL_WIDTH + total * scale:.1f}" y2="{top}"/>']
    tick = 0
    while tick <= total + 1e-9:
        x = LABEL_WIDTH + tick * scale
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{top}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + 16}" text-anchor="middle">{tick} s</text>')
        tick += step
    return parts


def _bar_svg(bar: Bar, row: int, scale: float) -> list[str]:
    y = row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) // 2
    x = LABEL_WIDTH + bar.start * scale
    width = max((bar.end - bar.start) * scale, MIN_BAR)
    fill = ' fill="url(#hatch)"' if bar.kind is BarKind.CACHED else ""
    title = escape(f"{bar.label}: {bar.kind.value}, {bar.start:.1f}-{bar.end:.1f} s")
    text_y = row * ROW_HEIGHT + ROW_HEIGHT // 2 + 5
    return [
        f'<text class="label" x="{LABEL_WIDTH - 8}" y="{text_y}" text-anchor="end">{escape(bar.label)}</text>',
        f'<rect class="bar {bar.kind.value}" data-stage="{escape(bar.label)}" x="{x:.1f}" y="{y}" '
        f'width="{width:.1f}" height="{BAR_HEIGHT}" rx="3"{fill}><title>{title}</title></rect>',
        f'<text class="note" x="{x + width + 6:.1f}" y="{text_y}">{escape(bar.note)}</text>',
    ]


def timeline_svg(timeline: Timeline) -> str:
    """The chart; every text in it escaped, nothing outside the page referenced."""
    total = timeline.total or 1.0
    scale = (WIDTH - LABEL_WIDTH - RIGHT_MARGIN) / total
    top = len(timeline.bars) * ROW_HEIGHT
    parts = [f'<svg class="timeline" width="{WIDTH}" height="{top + AXIS_HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {top + AXIS_HEIGHT}" role="img" aria-label="stage timeline">',
             '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#d4d4d8"/>'
             '<line x1="0" y1="0" x2="0" y2="6" stroke="#71717a" stroke-width="3"/></pattern></defs>',
             *_axis(total, scale, top)]
    for row, bar in enumerate(timeline.bars):
        parts += _bar_svg(bar, row, scale)
    parts.append("</svg>")
    return "\n".join(parts)
