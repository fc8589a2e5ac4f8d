"""Hostile descriptions against a store that holds the example's cache: whatever their
config.sh tries (rewriting other entries, the pool, reading other builds' requests, a fork
bomb, a memory hog), the store keeps every byte, the example rebuilds as a pure cache hit,
and a plain password is nowhere. Plus a tampered entry, found and rebuilt, and two
concurrent builds of one description."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
from lxml import etree

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.images import STORE_IMAGE, content_tag
from liveorch.orchestrator.progress import PlainProgress
from liveorch.orchestrator.report import BuildReport

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
LIVEORCH = [sys.executable, "-m", "liveorch"]
SECRET = "Plain-Secret-4711-never-at-rest"

# Runs inside the rootfs stage as root with its capabilities. It leaves the chroot (perl is
# Essential), then goes after everything it can find: every file of the store (results,
# records, the pool), renames and new files, a remount; it lists the requests it can read.
ATTACK = r"""#!/bin/bash
perl -e 'mkdir "esc"; chroot "esc"; chdir ".." for 1..64; chroot "."; exec "/bin/sh", "-c", $ARGV[0]' '
  requests=$(find / \( -path /proc -o -path /sys \) -prune -o -name request.json -print 2>/dev/null)
  echo "hostile: requests I can read: $(echo $requests)"
  echo "hostile: whoami $(id -u), store is $(grep " /store " /proc/mounts 2>/dev/null | cut -d" " -f4 | cut -d, -f1)"
  changed=0
  for f in $(find /store -type f 2>/dev/null); do
    { echo pwned > "$f"; } 2>/dev/null && changed=$((changed+1))
    truncate -s 0 "$f" 2>/dev/null && changed=$((changed+1))
    rm -f "$f" 2>/dev/null && changed=$((changed+1))
  done
  for d in $(find /store -type d 2>/dev/null); do
    touch "$d/planted" 2>/dev/null && changed=$((changed+1))
    mv "$d" "$d.moved" 2>/dev/null && changed=$((changed+1))
  done
  mount -o remount,rw /store 2>/dev/null && changed=$((changed+1))
  echo "hostile: store changes that worked: $changed"
'
"""
FORK_BOMB = r"""
bomb() { bomb | bomb & }
(bomb) >/dev/null 2>&1 </dev/null
sleep 8
echo "hostile: still here"
exit 0
"""
MEMORY_HOG = r"""#!/bin/bash
hog=$(head -c 2500M /dev/zero | tr '\0' x)
echo "hostile: held ${#hog} bytes"
"""


def _hostile(tmp_path: Path, name: str, hook: str) -> Path:
    """The example (same packages: resolve stays cached), a user with a plain password, a config.sh."""
    directory = tmp_path / name
    directory.mkdir()
    tree = etree.parse(str(EXAMPLE))
    users = tree.find("users")
    etree.SubElement(users, "user", name="mallory", password=SECRET, pwdformat="plain", home="/home/mallory")
    tree.write(str(directory / "config.xml"))
    (directory / "config.sh").write_text(hook)
    (directory / "config.sh").chmod(0o755)
    return directory


def _store_files(client: docker.DockerClient, volume: str) -> dict[str, str]:
    """sha256 of every file in the store but the transient ones (leases, half-published entries)."""
    out = client.containers.run(content_tag(STORE_IMAGE), entrypoint=["sh"], remove=True, network_mode="none",
                                volumes={volume: {"bind": "/store", "mode": "ro"}}, command=[
        "-c", "cd /store && find . -type f ! -path './leases/*' ! -path './.incoming/*' ! -path './.trash/*' "
              "-exec sha256sum {} + | sort -k 2"])
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.decode().splitlines()}


def _grep_store(client: docker.DockerClient, volume: str, needle: str) -> str:
    """Every file in the store, tars unpacked too, searched for `needle`."""
    script = (f"cd /store && grep -rl -- {needle!r} . ; for t in $(find . -name '*.tar'); do "
              f"tar -xOf $t 2>/dev/null | grep -q -- {needle!r} && echo in $t; done; true")
    return client.containers.run(content_tag(STORE_IMAGE), entrypoint=["sh"], command=["-c", script], remove=True,
                                 network_mode="none", volumes={volume: {"bind": "/store", "mode": "ro"}}
                                 ).decode().strip()


def _liveorch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LIVEORCH, *args], capture_output=True, text=True, timeout=1200)


def _liveorch_together(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Several liveorch commands at the same time; each one's outcome."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: _liveorch(*args), commands))


def _states(report: BuildReport) -> dict[str, bool]:
    return {r.stage: r.cached for r in report.stages}


def test_hostile_descriptions_cannot_touch_the_store(example_build: BuildReport, test_volume: str, tmp_path: Path,
                                                     docker_client: docker.DockerClient) -> None:
    before = _store_files(docker_client, test_volume)
    assert any(name.endswith("/root.tar") for name in before) and any(n.startswith("./pool/") for n in before)

    # Both at once, as two hostile builds on one runner would be (and in half the time).
    attack, hog = _liveorch_together(
        ["run", str(_hostile(tmp_path, "attack", ATTACK + FORK_BOMB)), "--target-dir", str(tmp_path / "attack-out"),
         "--volume", test_volume, "--pids-limit", "256", "--verbose"],
        ["run", str(_hostile(tmp_path, "hog", MEMORY_HOG)), "--target-dir", str(tmp_path / "hog-out"),
         "--volume", test_volume, "--memory", "1g"])
    assert attack.returncode == 4, attack.stdout[-3000:] + attack.stderr[-3000:]
    assert "rootfs stage failed: config.sh: too many processes" in attack.stderr, attack.stderr
    assert "hostile: store changes that worked: 0" in attack.stdout, attack.stdout[-5000:]
    readable = next(ln for ln in attack.stdout.splitlines() if "hostile: requests I can read:" in ln)
    assert readable.split("requests I can read:", 1)[1].split() == ["/work/request.json"], "only its own request"
    assert "store is ro" in attack.stdout
    assert "Traceback" not in attack.stderr

    assert hog.returncode == 4, hog.stdout[-3000:] + hog.stderr[-3000:]
    assert "rootfs stage failed: config.sh: out of memory" in hog.stderr, hog.stderr

    after = _store_files(docker_client, test_volume)
    assert {name: after.get(name) for name in before} == before, "every entry's bytes are unchanged"
    again = run_build(EXAMPLE, BuildOptions(target_dir=tmp_path / "again", volume=test_volume), print)
    assert all(_states(again).values()), _states(again)
    assert again.sha256 == example_build.sha256

    assert _grep_store(docker_client, test_volume, SECRET) == "", "the plain password is not in the store"
    for target in (tmp_path / "attack-out", tmp_path / "hog-out", tmp_path / "again"):
        for file in target.iterdir():
            assert SECRET not in file.read_text(errors="replace"), file
    assert SECRET not in attack.stdout + attack.stderr + hog.stdout + hog.stderr


def test_a_tampered_entry_is_found_and_rebuilt(example_build: BuildReport, test_volume: str, tmp_path: Path,
                                               docker_client: docker.DockerClient) -> None:
    iso_key = next(r.key for r in example_build.stages if r.stage == "iso")
    docker_client.containers.run(content_tag(STORE_IMAGE), entrypoint=["sh"], remove=True, network_mode="none",
                                 volumes={test_volume: {"bind": "/store", "mode": "rw"}}, command=[
        "-c", f"printf X | dd of=/store/iso/{iso_key}/image.iso bs=1 seek=40000 conv=notrunc"])
    notes: list[str] = []
    report = run_build(EXAMPLE, BuildOptions(target_dir=tmp_path, volume=test_volume),
                       PlainProgress(write=notes.append, timestamps=False))
    assert any("the cached iso result" in n and "failed verification" in n for n in notes), notes
    rebuilt = {stage for stage, cached in _states(report).items() if not cached}
    assert rebuilt == {"iso"}, "the rebuilt ISO has the same bytes: checksum stays cached"
    assert report.sha256 == example_build.sha256


def test_two_builds_of_one_description_at_once(example_build: BuildReport, test_volume: str, tmp_path: Path,
                                               docker_client: docker.DockerClient) -> None:
    """Both succeed with the same ISO; each stage they ran is published by one of them only."""
    directory = tmp_path / "same"
    directory.mkdir()
    tree = etree.parse(str(EXAMPLE))
    tree.find("preferences/type/bootloader").set("timeout", "7")
    tree.write(str(directory / "config.xml"))
    runs = [subprocess.Popen([*LIVEORCH, "run", str(directory / "config.xml"), "--target-dir",
                              str(tmp_path / f"out{n}"), "--volume", test_volume, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    summaries = []
    for process in runs:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, out[-2000:] + err[-2000:]
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    assert summaries[0]["sha256"] == summaries[1]["sha256"]
    reports = [json.loads(next((tmp_path / f"out{n}").glob("*.report.json")).read_text()) for n in (1, 2)]
    for stage in ("iso", "checksum"):
        published = [s["published"] for r in reports for s in r["stages"] if s["stage"] == stage]
        assert published.count(True) == 1, (stage, published)


def test_a_symlink_planted_in_the_target_directory_is_left_alone(tmp_path: Path, test_volume: str) -> None:
    target = tmp_path / "out"
    target.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = target / "bookworm-live.x86_64-1.0.0.iso"
    link.symlink_to(victim)
    completed = _liveorch("run", str(EXAMPLE), "--target-dir", str(target), "--volume", test_volume)
    assert completed.returncode == 5, completed.stderr
    assert "is a symlink" in completed.stderr and "Traceback" not in completed.stderr
    assert link.is_symlink() and victim.read_text() == "keep me\n"
    assert sorted(p.name for p in target.iterdir()) == [link.name]
