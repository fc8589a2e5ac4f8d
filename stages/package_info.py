"""What the built root says about its packages, for the SBOM and KIWI's .verified file.

Read from the root's own dpkg database and /usr/share/doc/*/copyright files; licenses
only from machine-readable (DEP-5) copyright files, never guessed from prose.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from liveorch.stages.tools import capture

FIELDS = ("Package", "Version", "Architecture", "Source", "Maintainer", "Homepage", "Installed-Size")
DEP5_MARKER = "copyright-format"


def dep5_licenses(copyright_file: Path) -> list[str]:
    """License short names of a DEP-5 copyright file's Files paragraphs; [] when not DEP-5."""
    try:
        text = copyright_file.read_text(errors="replace")
    except OSError:
        return []
    first = text.split("\n", 1)[0]
    if not first.lower().startswith("format:") or DEP5_MARKER not in first:
        return []
    names: set[str] = set()
    for paragraph in text.split("\n\n"):
        lines = paragraph.strip().splitlines()
        if not any(line.startswith("Files:") for line in lines):
            continue
        for line in lines:
            if line.startswith("License:"):
                value = line[len("License:"):].strip()
                if value:
                    names.add(value)
    return sorted(names)


def installed_bytes(value: str) -> int | None:
    """dpkg's Installed-Size is an estimate in KiB, which a package may leave out; the report
    ranks packages by it to show where an image's bytes go."""
    return int(value) * 1024 if value.strip().isdigit() else None


def package_info(root: Path) -> list[dict[str, object]]:
    fmt = "\\t".join("${" + f + "}" for f in FIELDS) + "\\n"
    text = capture(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", f"-f={fmt}"])
    packages = []
    for line in sorted(text.splitlines()):
        values = dict(zip(FIELDS, line.split("\t"), strict=True))
        name = values["Package"]
        doc = root / "usr/share/doc" / name / "copyright"
        packages.append({
            "name": name,
            "version": values["Version"],
            "architecture": values["Architecture"],
            "source": (values["Source"] or name).split(" ")[0],
            "maintainer": values["Maintainer"],
            "homepage": values["Homepage"],
            "licenses": dep5_licenses(doc),
            "installed_size": installed_bytes(values["Installed-Size"]),
        })
    return packages


def write_package_info(root: Path, out: Path) -> None:
    (out / "package-info.json").write_text(json.dumps(package_info(root), indent=1, sort_keys=True) + "\n")


# An empty file would not say whether the check ran and found nothing: the header says so.
VERIFIED_HEADER = """\
# dpkg --verify of the image's root: one line per packaged file that differs from what its
# package installed, in dpkg's format ("??5?????? c /etc/x": 5 = its checksum differs,
# c = a configuration file). No line below this header: every file is as installed.
"""


def write_verified(root: Path, out: Path) -> None:
    """KIWI's .verified: files that differ from what their packages installed (dpkg --verify)."""
    completed = subprocess.run(["dpkg", f"--root={root}", "--verify"], capture_output=True, text=True)
    lines = sorted(line for line in completed.stdout.splitlines() if line.strip())
    (out / "verified").write_text(VERIFIED_HEADER + "".join(line + "\n" for line in lines))
