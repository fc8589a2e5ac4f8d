"""report.html: a picture of one build, drawn from its report.json, for a user who wants
to see at a glance why an image is big or a build slow.

One static page with its CSS and SVG inline: no script, font, image or link outside it, so
it can be mailed, attached to a CI run or opened from a USB stick. A description is not
trusted: every text that comes from the record (names, package names, menu entries) is
escaped, and the page shows only fields chosen here, none of which holds a secret.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

from liveorch.orchestrator import report_timeline
from liveorch.orchestrator.report_sizes import Part, iso_split, largest_packages, uncompressed_root
from liveorch.orchestrator.report_timeline import Bar, BarKind, Timeline, build_timeline, concurrent_with, timeline_svg
from liveorch.orchestrator.target_files import write_file_atomic

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1000px;color:#18181b;
padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #e4e4e7;padding-bottom:.3rem}
.sub{color:#52525b;margin-top:0}table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #f4f4f5;vertical-align:top}
th{color:#52525b;font-weight:600}td.num,th.num{text-align:right;white-space:nowrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;word-break:break-all}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.facts dt{color:#52525b}
dl.facts dd{margin:0}ul.glance li{margin:.2rem 0}.note{color:#52525b;font-size:.9rem}
svg.timeline{max-width:100%;height:auto}
svg text{font-family:inherit;font-size:12px;fill:#3f3f46}svg .label{font-weight:600}
.bar.ran{fill:#2563eb}.bar.setup,.bar.export{fill:#cbd5e1}.bar.cached{stroke:#71717a}
.axis{stroke:#a1a1aa}.grid{stroke:#f4f4f5}.legend span{display:inline-block;margin-right:1.2rem}
.swatch{display:inline-block;width:.9rem;height:.9rem;border-radius:2px;vertical-align:-2px;margin-right:.3rem}
.split{display:flex;height:28px;border-radius:4px;overflow:hidden;margin:.6rem 0}
.split div{height:100%}.meter{background:#f4f4f5;height:.8rem;border-radius:2px;min-width:8rem}
.meter div{background:#2563eb;height:100%;border-radius:2px}
.result{font-weight:600;white-space:nowrap}.result.passed{color:#15803d}.result.found,.result.warning{color:#b45309}
.result.off,.result.not-run{color:#71717a}
"""
PART_COLOURS = ("#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#94a3b8", "#ef4444")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _share(part: int, whole: int | None) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _glance(record: dict[str, Any], timeline: Timeline, parts: list[Part]) -> str:
    """The answers to "why is it big, why was it slow" in a few sentences."""
    stages = record.get("stages", [])
    ran = [s for s in stages if not s.get("cached")]
    items = []
    if stages:
        slowest = max(stages, key=lambda s: float(s.get("seconds") or 0))
        together = sorted({tuple(sorted((b.label, *concurrent_with(timeline, b.label)))) for b in timeline.bars
                           if concurrent_with(timeline, b.label)})
        side = "; ".join(" and ".join(group) for group in together)
        items.append(f"Build: {float(record.get('seconds') or 0):.1f} s. Slowest stage: {_e(slowest['stage'])} "
                     f"({float(slowest.get('seconds') or 0):.1f} s). {len(stages) - len(ran)} of {len(stages)} "
                     "stages cached." + (f" Ran side by side: {_e(side)}." if side else ""))
    iso_size = int(record.get("iso", {}).get("size") or 0)
    if parts:
        items.append(f"ISO: {_size(iso_size)}, of which the {_e(parts[0].label)} is {_share(parts[0].size, iso_size)}."
                     + _root_sentence(record, parts))
    ranked, total = largest_packages(record)
    if ranked:
        items.append(f"Largest package: {_e(ranked[0]['name'])}, {_size(ranked[0]['size'])} installed "
                     f"({_share(ranked[0]['size'], total)} of {_size(total)} for all packages).")
    return '<ul class="glance">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _root_sentence(record: dict[str, Any], parts: list[Part]) -> str:
    root = uncompressed_root(record)
    image = next((p for p in parts if p.label == "root filesystem"), None)
    if not root or image is None:
        return ""
    return (f" The root is {_size(root)} uncompressed and {_size(image.size)} on the medium "
            f"({_share(image.size, root)}).")


def _header(record: dict[str, Any]) -> str:
    description = record.get("description", {})
    iso = record.get("iso", {})
    facts = [("ISO", f"<code>{_e(iso.get('name', ''))}</code>"), ("size", _size(iso.get("size"))),
             ("sha256", f"<code>{_e(iso.get('sha256', ''))}</code>"), ("packages", _e(record.get("packages", "-"))),
             ("build time", f"{float(record.get('seconds') or 0):.1f} s"),
             ("profiles", _e(", ".join(description.get("profiles", [])) or "-")),
             ("description", f"<code>{_e(description.get('path', ''))}</code>"),
             ("liveorch", _e(record.get("liveorch", "")))]
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return (f"<h1>{_e(description.get('name', 'build'))} {_e(description.get('version', ''))}</h1>"
            f'<p class="sub">{_e(description.get("summary") or "")}</p><dl class="facts">{rows}</dl>')


def _stage_row(stage: dict[str, Any], bar: Bar, timeline: Timeline) -> str:
    """`in container`: the stage's own time; the rest of `seconds` is the engine's (container
    start, copying the outputs into the store)."""
    inside = stage.get("stage_seconds")
    inside_text = "-" if stage.get("cached") or not isinstance(inside, int | float) else f"{inside:.1f}"
    outputs = sum(int(o.get("size") or 0) for o in stage.get("outputs", {}).values())
    cells = [_e(bar.label), "cached" if stage.get("cached") else "ran", f"{bar.start:.1f}", f"{bar.end:.1f}",
             f"{float(stage.get('seconds') or 0):.1f}", inside_text,
             _e(", ".join(concurrent_with(timeline, bar.label)) or "-"), _size(outputs)]
    classes = ["", "", ' class="num"', ' class="num"', ' class="num"', ' class="num"', "", ' class="num"']
    return "<tr>" + "".join(f"<td{c}>{cell}</td>" for c, cell in zip(classes, cells, strict=True)) + "</tr>"


def _stage_rows(record: dict[str, Any], timeline: Timeline) -> str:
    bars = {b.label: b for b in timeline.bars if b.kind in (BarKind.RAN, BarKind.CACHED)}
    return "".join(_stage_row(s, bars[str(s.get("stage"))], timeline) for s in record.get("stages", []))


def _timeline_section(record: dict[str, Any], timeline: Timeline) -> str:
    estimated = ""
    if timeline.estimated:
        stages_end = max((b.end for b in timeline.bars), default=0.0)
        rest = (f" The other {timeline.total - stages_end:.1f} s of the build went to preparation (stage images, "
                "store) and export." if timeline.total - stages_end >= report_timeline.MIN_GAP else "")
        estimated = ('<p class="note">This report has no start times (an older liveorch made it): the timeline '
                     f"places each stage after its inputs, by its duration.{rest}</p>")
    legend = ('<p class="legend"><span><i class="swatch" style="background:#2563eb"></i>ran</span>'
              '<span><i class="swatch" style="background:#d4d4d8"></i>cached (hatched)</span>'
              '<span><i class="swatch" style="background:#cbd5e1"></i>preparation (stage images, store) and '
              "export (results copied out)</span></p>")
    table = ('<table><tr><th>stage</th><th>state</th><th class="num">start s</th><th class="num">end s</th>'
             '<th class="num">seconds</th><th class="num">in container</th><th>alongside</th>'
             f'<th class="num">outputs</th></tr>{_stage_rows(record, timeline)}</table>')
    return f"<h2>Timeline</h2>{estimated}{timeline_svg(timeline)}{legend}{table}"


def _split_section(record: dict[str, Any], parts: list[Part]) -> str:
    iso_size = int(record.get("iso", {}).get("size") or 0)
    if not parts or not iso_size:
        return ""
    colours = {p.label: PART_COLOURS[i % len(PART_COLOURS)] for i, p in enumerate(parts)}
    bar = "".join(f'<div data-part="{_e(p.label)}" title="{_e(p.label)} {_size(p.size)}" '
                  f'style="width:{100 * p.size / iso_size:.2f}%;background:{colours[p.label]}"></div>' for p in parts)
    rows = "".join(f'<tr><td><i class="swatch" style="background:{colours[p.label]}"></i>{_e(p.label)}</td>'
                   f'<td>{_e(p.detail)}</td><td class="num">{_size(p.size)}</td>'
                   f'<td class="num">{_share(p.size, iso_size)}</td></tr>' for p in parts)
    return (f"<h3>The ISO ({_size(iso_size)})</h3><div class=\"split\">{bar}</div>"
            f'<table><tr><th>part</th><th>file</th><th class="num">size</th><th class="num">share</th></tr>'
            f"{rows}</table>")


def _packages_section(record: dict[str, Any]) -> str:
    ranked, total = largest_packages(record)
    if not ranked:
        return ('<h3>Largest packages</h3><p class="note">This report has no installed sizes (an older liveorch '
                "made it); a new build records them.</p>")
    top = ranked[0]["size"] or 1
    rows = "".join(f'<tr><td class="num">{i}</td><td>{_e(p["name"])}</td><td><code>{_e(p.get("version", ""))}</code>'
                   f'</td><td class="num">{_size(p["size"])}</td><td class="num">{_share(p["size"], total)}</td>'
                   f'<td><div class="meter"><div style="width:{100 * p["size"] / top:.1f}%"></div></div></td></tr>'
                   for i, p in enumerate(ranked, 1))
    return (f"<h3>Largest packages by installed size</h3><p class=\"note\">dpkg's Installed-Size, uncompressed; "
            f"all {_e(record.get('packages', ''))} packages: {_size(total)}.</p>"
            '<table><tr><th class="num">#</th><th>package</th><th>version</th><th class="num">installed</th>'
            f'<th class="num">share</th><th></th></tr>{rows}</table>')


def _boot_section(record: dict[str, Any]) -> str:
    boot = record.get("boot")
    if not isinstance(boot, dict):
        return '<h2>Boot menu</h2><p class="note">This report does not record the boot menu.</p>'
    rows = "".join(f'<tr><td class="num">{i}</td><td>{_e(e.get("title", ""))}{" (default)" if i == 1 else ""}</td>'
                   f'<td><code>{_e(e.get("kernel_cmdline", ""))}</code></td></tr>'
                   for i, e in enumerate(boot.get("entries", []), 1))
    return (f"<h2>Boot menu</h2><p>firmware <b>{_e(boot.get('firmware', ''))}</b>; GRUB's menu on "
            f"<b>{_e(boot.get('terminal', ''))}</b>, timeout style {_e(boot.get('timeout_style', ''))}, "
            f"the default entry boots after {_e(boot.get('timeout', ''))} s</p>"
            f'<table><tr><th class="num">#</th><th>entry</th><th>kernel command line</th></tr>{rows}</table>')


def _check_row(check: dict[str, Any]) -> str:
    result = str(check.get("result", ""))
    return (f'<tr><td>{_e(check.get("check", ""))}</td><td class="result {_e(result.replace(" ", "-"))}">'
            f'{_e(result)}</td><td>{_e(check.get("detail", ""))}</td></tr>')


def _checks_section(record: dict[str, Any]) -> str:
    checks = record.get("checks")
    if not isinstance(checks, list):
        return '<h2>Checks</h2><p class="note">This report does not list its checks.</p>'
    rows = "".join(_check_row(c) for c in checks if isinstance(c, dict))
    return f"<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>what</th></tr>{rows}</table>"


def _notes_section(record: dict[str, Any]) -> str:
    lines = [f"warning: {w}" for w in record.get("trust", {}).get("warnings", [])]
    lines += [f"note: {n}" for n in record.get("notes", [])]
    if not lines:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>"


def render_report(record: dict[str, Any]) -> str:
    """The whole page for one report.json record."""
    timeline = build_timeline(record)
    parts = iso_split(record)
    description = record.get("description", {})
    title = f"{description.get('name', 'build')} {description.get('version', '')}: liveorch build report"
    body = [_header(record), "<h2>At a glance</h2>", _glance(record, timeline, parts),
            _timeline_section(record, timeline), "<h2>Where the bytes go</h2>", _split_section(record, parts),
            _packages_section(record), _boot_section(record), _checks_section(record), _notes_section(record),
            f'<p class="note">Drawn by liveorch {_e(record.get("liveorch", ""))} from {_e(report_json_name(record))}'
            ".</p>"]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def report_json_name(record: dict[str, Any]) -> str:
    iso = str(record.get("iso", {}).get("name", "build.iso"))
    return iso.removesuffix(".iso") + ".report.json"


def write_report_html(record: dict[str, Any], target: Path) -> None:
    write_file_atomic(target, render_report(record))


def main(argv: list[str]) -> int:
    """Redraws report.html from a report.json (an older one, or after liveorch changed), beside it."""
    if len(argv) != 1 or not argv[0].endswith(".report.json"):
        print("usage: python -m liveorch.orchestrator.report_html NAME.report.json", file=sys.stderr)
        return 2
    source = Path(argv[0])
    try:
        record = json.loads(source.read_text())
    except (OSError, ValueError) as error:
        print(f"{source}: not a readable report.json ({error})", file=sys.stderr)
        return 1
    target = source.with_name(source.name.removesuffix(".json") + ".html")
    write_report_html(record, target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
