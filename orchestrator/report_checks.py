"""The checks a build ran, as report.json lists them (and report.html shows them).

A build refuses to finish when most of its checks fail (the lock, the checksum read-back,
the exported ISO's sha256), so a finished build's record says what was checked rather than
whether; the ones that can find something without failing (dpkg --verify, unsigned
repositories) and the ones that were off or are left to the user say so.
"""

from __future__ import annotations

import enum
from typing import Any

from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan


class CheckResult(enum.StrEnum):
    PASSED = "passed"
    FOUND = "found"  # the check ran and reports differences the build does not fail on
    WARNING = "warning"
    OFF = "off"  # switched off by the description
    NOT_RUN = "not run"  # not a build's job: the user runs it


def _check(name: str, result: CheckResult, detail: str) -> dict[str, str]:
    return {"check": name, "result": result.value, "detail": detail}


def _signatures(lock: dict[str, Any]) -> dict[str, str]:
    repositories = lock.get("repositories", [])
    unsigned = [r["alias"] for r in repositories if r.get("trusted")]
    signed = [r["alias"] for r in repositories if not r.get("trusted")]
    if unsigned:
        return _check("repository signatures", CheckResult.WARNING,
                      f"not checked for {', '.join(unsigned)} (trusted without a signature)"
                      + (f"; checked for {', '.join(signed)}" if signed else ""))
    return _check("repository signatures", CheckResult.PASSED, f"apt checked the signatures of {', '.join(signed)}")


def _dpkg_verify(verified_lines: int, basename: str) -> dict[str, str]:
    if verified_lines == 0:
        return _check("dpkg --verify", CheckResult.PASSED, "no installed file differs from what its package installed")
    return _check("dpkg --verify", CheckResult.FOUND, f"{verified_lines} files differ from what their packages "
                  f"installed (changed by the description or its hooks): see {basename}.verified")


def _cache_hits(reports: list[StageReport]) -> list[dict[str, str]]:
    cached = [r.stage for r in reports if r.cached]
    if not cached:
        return []
    return [_check("cached results", CheckResult.PASSED, f"{', '.join(cached)}: every file hashed again and "
                   "matched its record before it was used")]


def _media(plan: BuildPlan) -> list[dict[str, str]]:
    checks = []
    if plan.options["checksum"].mediacheck:
        checks.append(_check("media check", CheckResult.PASSED, "MD5 implanted and accepted by checkisomd5; the "
                             "boot menu's media check entry verifies the medium (rd.live.check)"))
    else:
        checks.append(_check("media check", CheckResult.OFF, 'mediacheck="false": no MD5 in the ISO'))
    verity = plan.options["iso"].verity
    if verity is not None:
        checks.append(_check("dm-verity", CheckResult.PASSED, f"hash tree over {verity} blocks of the root image; "
                             "the kernel checks every block it reads"))
    return checks


def build_checks(plan: BuildPlan, reports: list[StageReport], lock: dict[str, Any], packages: int,
                 verified_lines: int) -> list[dict[str, str]]:
    """Every check, in the order the build ran them, then the boot test it leaves to the user."""
    return [
        _signatures(lock),
        *_cache_hits(reports),
        _check("packages match the lock", CheckResult.PASSED, "the root holds exactly the lock's packages, less "
               f"any the description deletes: {packages} installed"),
        _dpkg_verify(verified_lines, plan.basename),
        *_media(plan),
        _check("sha256", CheckResult.PASSED, "written, read back and matched; the exported ISO is the one the "
               "checksum stage verified"),
        _check("boot test", CheckResult.NOT_RUN, f"a build does not boot its ISO: liveorch test {plan.iso_name}"),
    ]
