"""report.html from a report.json record (the real example build's shape): self-contained,
escaped, the timeline's overlaps and cache marks, and the sizes in order. Also what
report.json gains for it: the boot menu, the installed sizes and the checks."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.report import boot_menu, installed_sizes
from liveorch.orchestrator.report_checks import CheckResult, build_checks
from liveorch.orchestrator.report_html import main, render_report, write_report_html
from liveorch.orchestrator.report_sizes import iso_split
from liveorch.orchestrator.report_timeline import build_timeline
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.stages.contract import Record
from liveorch.stages.package_info import installed_bytes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"
HOSTILE = '<script>alert("x")</script>'


def _stage(name: str, seconds: float, started: float, outputs: dict[str, int], facts: dict[str, Any],
           cached: bool = False) -> dict[str, Any]:
    took = 0.0 if cached else seconds
    return {"stage": name, "image": "sha256:" + "1" * 64, "image_tag": f"liveorch/{name}:8878c69ba66c7d51",
            "image_digest": None, "code": "2" * 64, "key": "3" * 64, "cached": cached, "published": not cached,
            "seconds": took, "started": started, "finished": started + took,
            "stage_seconds": seconds - 1.5, "facts": facts, "tools": {"tar": "1.34"}, "container": None,
            "outputs": {n: {"size": size, "sha256": "4" * 64} for n, size in outputs.items()}}


@pytest.fixture
def record() -> dict[str, Any]:
    """The example build's report.json (out/bookworm-live.x86_64-1.0.0.report.json) with the
    fields report.html draws; sizes and durations are that build's."""
    stages = [
        _stage("resolve", 7.15, 31.2, {"lock.json": 49986}, {"source_date_epoch": 1795897038, "packages": 167},
               cached=True),
        _stage("rootfs", 42.63, 31.3, {"package-info.json": 57422, "packages": 8429, "root.tar": 717240320,
                                       "verified": 0}, {}),
        _stage("squashfs", 43.48, 74.0, {"LiveOS/squashfs.img": 187969536}, {"filesystem": "squashfs"}),
        _stage("initrd", 20.92, 74.1, {"efi/grub.efi": 3835328, "efi/mm.efi": 877992, "efi/shim.efi": 1048504,
                                       "initrd.img": 33626677, "vmlinuz": 8247232}, {"kernel": "6.1.0-57-amd64"}),
        _stage("iso", 2.69, 117.5, {"image.iso": 237037568},
               {"secure_boot": True, "efi_partition": ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi"],
                "efi_image_size": 6291456}),
        _stage("checksum", 3.22, 120.2, {"image.iso": 237037568, "image.iso.sha256": 97}, {"sha256": "5" * 64}),
    ]
    return {
        "liveorch": "0.1.0",
        "description": {"path": "examples/bookworm-live/config.xml", "sha256": "6" * 64, "payload_sha256": None,
                        "name": "bookworm-live", "version": "1.0.0", "summary": "Minimal Debian 12 live ISO",
                        "profiles": [], "changes": {}},
        "repositories": [{"alias": "debian", "components": ["main"], "local": False, "suite": "bookworm",
                          "trusted": False, "url": "http://deb.debian.org/debian"}],
        "trust": {"warnings": [], "unsigned_repositories": []},
        "notes": [], "stages": stages, "packages": 167, "seconds": 140.1,
        "iso": {"name": "bookworm-live.x86_64-1.0.0.iso", "size": 237037568, "sha256": "5" * 64},
        "installed_size": {"total": 697098240, "largest": [
            {"name": "linux-image-6.1.0-57-amd64", "version": "6.1.192-3", "size": 410419200},
            {"name": "libperl5.36", "version": "5.36.0-7+deb12u4", "size": 29569024},
            {"name": "coreutils", "version": "9.1-1", "size": 18446336}]},
        "boot": {"firmware": "uefi", "terminal": "serial", "timeout": 3, "timeout_style": "menu",
                 "entries": [{"title": "Debian bookworm live (liveorch)",
                              "kernel_cmdline": "root=live:CDLABEL=BOOKWORM_LIVE rd.live.image console=ttyS0,115200"}]},
        "checks": [{"check": "sha256", "result": "passed", "detail": "written, read back and matched"}],
    }


def _bars(page: str) -> dict[str, tuple[float, float, str]]:
    """data-stage -> (x, x + width, class) of each timeline bar."""
    found = {}
    for match in re.finditer(r'<rect class="bar (\w+)" data-stage="([^"]+)" x="([\d.]+)" y="\d+" width="([\d.]+)"',
                             page):
        kind, stage, x, width = match.groups()
        found[stage] = (float(x), float(x) + float(width), kind)
    return found


def test_the_page_is_self_contained(record: dict[str, Any]) -> None:
    page = render_report(record)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<svg" in page
    lowered = page.lower()
    for external in ("http://", "https://", "<script", "src=", "<link", "@import", "url(http", "//fonts."):
        assert external not in lowered, external
    assert all(u == "url(#hatch)" for u in re.findall(r"url\([^)]*\)", page)), "only the page's own pattern"


def test_squashfs_and_initrd_overlap_on_the_timeline(record: dict[str, Any]) -> None:
    bars = _bars(render_report(record))
    squashfs, initrd, iso = bars["squashfs"], bars["initrd"], bars["iso"]
    assert squashfs[0] < initrd[1] and initrd[0] < squashfs[1], "side by side: the x ranges overlap"
    assert bars["rootfs"][1] <= squashfs[0] + 0.1 and squashfs[1] <= iso[0] + 0.1, "one after the other: they do not"
    assert bars["preparation"][2] == "setup" and bars["export"][2] == "export"
    assert ">squashfs</td><td>ran</td>" in render_report(record).replace("\n", "")


def test_stages_in_sequence_do_not_overlap(record: dict[str, Any]) -> None:
    record["stages"][3]["started"], record["stages"][3]["finished"] = 117.5, 117.5 + 20.92
    timeline = build_timeline(record)
    spans = {b.label: b for b in timeline.bars}
    assert not spans["squashfs"].overlaps(spans["initrd"])


def test_a_cached_stage_is_marked(record: dict[str, Any]) -> None:
    page = render_report(record)
    bars = _bars(page)
    assert bars["resolve"][2] == "cached" and bars["rootfs"][2] == "ran"
    assert bars["resolve"][1] - bars["resolve"][0] > 0, "a cached stage is seen although it took no time"
    assert "1 of 6 stages cached" in page


def test_hostile_text_is_escaped(record: dict[str, Any]) -> None:
    record["installed_size"]["largest"][1]["name"] = HOSTILE
    record["description"]["name"] = HOSTILE
    record["description"]["summary"] = '"><img src=x onerror=alert(1)>'
    record["boot"]["entries"][0]["title"] = HOSTILE
    record["boot"]["entries"][0]["kernel_cmdline"] = "</code><script>x</script>"
    record["notes"] = [HOSTILE]
    record["checks"][0]["detail"] = HOSTILE
    page = render_report(record)
    assert "<script" not in page.lower() and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_the_largest_packages_are_listed_largest_first(record: dict[str, Any]) -> None:
    record["installed_size"]["largest"].reverse()
    page = render_report(record)
    positions = [page.index(name) for name in ("linux-image-6.1.0-57-amd64", "libperl5.36", "coreutils")]
    assert positions == sorted(positions)
    assert "59%" in page, "the kernel's share of all installed bytes"


def test_the_iso_split(record: dict[str, Any]) -> None:
    parts = {p.label: p.size for p in iso_split(record)}
    assert parts["root filesystem"] == 187969536 and parts["initrd"] == 33626677 and parts["kernel"] == 8247232
    assert parts["EFI partition"] == 6291456
    assert sum(parts.values()) == record["iso"]["size"], "the rest makes up the ISO"
    assert iso_split(record)[0].label == "root filesystem"
    page = render_report(record)
    assert 'data-part="root filesystem"' in page and "79%" in page


def test_an_older_report_gets_an_estimated_timeline(record: dict[str, Any]) -> None:
    """report.json from before start times, installed sizes, menu and checks were recorded."""
    old = copy.deepcopy(record)
    for stage in old["stages"]:
        for key in ("started", "finished", "facts"):
            del stage[key]
    for key in ("installed_size", "boot", "checks"):
        del old[key]
    timeline = build_timeline(old)
    assert timeline.estimated
    spans = {b.label: b for b in timeline.bars}
    assert spans["squashfs"].start == spans["initrd"].start == spans["rootfs"].end
    page = render_report(old)
    assert "no start times" in page and "no installed sizes" in page
    assert {p.label for p in iso_split(old)} >= {"EFI partition", "root filesystem"}, "the signed chain's size"


def test_the_page_mentions_every_stage_and_is_written_atomically(record: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "bookworm-live.x86_64-1.0.0.report.html"
    write_report_html(record, target)
    page = target.read_text()
    assert all(f'data-stage="{stage}"' in page for stage in stage_names())
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_the_page_is_redrawn_from_a_report_json(record: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "bookworm-live.x86_64-1.0.0.report.json"
    source.write_text(json.dumps(record))
    assert main([str(source)]) == 0
    assert (tmp_path / "bookworm-live.x86_64-1.0.0.report.html").read_text() == render_report(record)
    assert main([str(tmp_path / "config.xml")]) == 2


# --- what report.json gains --------------------------------------------------------------

@pytest.fixture(scope="module")
def plan() -> BuildPlan:
    return make_plan(parse_description(EXAMPLE))


def test_the_boot_menu_is_the_plans(plan: BuildPlan) -> None:
    menu = boot_menu(plan)
    assert menu["firmware"] == "uefi" and menu["terminal"] == plan.options["iso"].menu.terminal.value
    assert [e["title"] for e in menu["entries"]] == [e.title for e in plan.options["iso"].menu.entries]
    assert any("rd.live.check" in e["kernel_cmdline"] for e in menu["entries"])


def test_installed_sizes_rank_the_packages() -> None:
    info = [{"name": "a", "version": "1", "installed_size": 10}, {"name": "b", "version": "1", "installed_size": 30},
            {"name": "c", "version": "1", "installed_size": None}, {"name": "d", "version": "1"}]
    assert installed_sizes(info, largest=1) == {"total": 40, "largest": [{"name": "b", "version": "1", "size": 30}]}
    assert installed_sizes([{"name": "d", "version": "1"}]) == {"total": None, "largest": []}
    assert installed_bytes("7164") == 7164 * 1024 and installed_bytes("") is None


def test_checks_say_what_ran(plan: BuildPlan) -> None:
    record = Record("resolve", "k", {}, {}, {}, 1.0)
    reports = [StageReport("resolve", "k", True, 0.0, record), StageReport("rootfs", "k", False, 3.0, record)]
    lock = {"repositories": [{"alias": "debian", "trusted": False}, {"alias": "local", "trusted": True}]}
    checks = {c["check"]: c for c in build_checks(plan, reports, lock, 167, verified_lines=2)}
    assert checks["repository signatures"]["result"] == CheckResult.WARNING
    assert "local" in checks["repository signatures"]["detail"]
    assert checks["cached results"]["detail"].startswith("resolve:")
    assert checks["dpkg --verify"]["result"] == CheckResult.FOUND and "2 files" in checks["dpkg --verify"]["detail"]
    assert checks["media check"]["result"] == CheckResult.PASSED, "the example has mediacheck=true"
    assert checks["boot test"]["result"] == CheckResult.NOT_RUN
    assert all(c["result"] in set(CheckResult) for c in checks.values())
