"""dracut's own step messages as the initrd stage's progress.

dracut prints `*** Including module: NAME ***` for each module and a line at the start of
each later step; the number of modules is not known up front, so each one moves the bar a
little within its band and the later steps jump to fixed points. The bands follow where the
time went on the example (unpack 6.5 s, dracut 6.4 s, compression 2 to 4 s).
"""

from __future__ import annotations

import re

from liveorch.stages.tools import report_progress

UNPACKED = 35.0
MODULES_END = 60.0
MODULE_STEP = 1.0
STEPS = (  # (what dracut prints, percent, what the view shows)
    ("Including modules done", MODULES_END, "dracut: modules included"),
    ("Installing kernel module dependencies", 62.0, "dracut: kernel module dependencies"),
    ("Resolving executable dependencies", 66.0, "dracut: executable dependencies"),
    ("Hardlinking files", 70.0, "dracut: hardlinking"),
    ("Creating image file", 72.0, "dracut: writing the cpio"),
    ("Creating initramfs image file", 80.0, "dracut: cpio written"),  # its "... done ***" line
)
COMPRESSING = 85.0
MODULE = re.compile(r"\*\*\* Including module: (\S+) \*\*\*")


class DracutSteps:
    """Called with every line dracut prints; reports progress when the line marks a step."""

    def __init__(self) -> None:
        self.percent = UNPACKED

    def __call__(self, line: str) -> None:
        found = MODULE.search(line)
        if found:
            self.percent = min(MODULES_END - MODULE_STEP, self.percent + MODULE_STEP)
            report_progress(self.percent, f"dracut: module {found.group(1)}")
            return
        for marker, percent, detail in STEPS:
            # A step's "... done ***" line matches its marker too; the bar only moves forward.
            if f"*** {marker}" in line and percent > self.percent:
                self.percent = percent
                report_progress(percent, detail)
                return
