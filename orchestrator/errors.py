"""Every error a user can see. Each has one line to show, an optional hint and an exit code;
the CLI prints them without a traceback (unless --debug).

Exit codes, as README.md's table states them (tests/unit/test_exit_codes.py holds the two
together): 1 a check failed (verify-repro, rebuild, test, doctor) or any other failure, 2 bad
description or option, 3 container engine, 4 a stage failed, 5 target directory or lock, 130
interrupted.
"""

from __future__ import annotations


class LiveorchError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class CheckFailed(LiveorchError):
    """What was checked is not as it should be: the ISO did not boot, builds differ."""

    exit_code = 1


class UsageError(LiveorchError):
    """An option value that cannot work (a bad --progress kind, a malformed size)."""

    exit_code = 2


class DescriptionError(LiveorchError):
    """The description is broken or asks for something liveorch cannot build (file:line: ...)."""

    exit_code = 2

    def __init__(self, message: str, path: object = None, line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}", hint)


class SpecError(DescriptionError):
    """A kiwi-ng repository SPEC (--set-repo, --add-repo) that does not parse."""

    def __init__(self, option: str, spec: str, message: str) -> None:
        super().__init__(f"{option} {spec!r}: {message}",
                         hint="SPEC is source,type,alias,priority,imageinclude,package_gpgcheck,{signing_keys},"
                              "components,distribution,repo_gpgcheck (empty fields keep defaults)")


class EngineError(LiveorchError):
    """The container engine is missing, unreachable or refused an operation."""

    exit_code = 3


class ImageBuildError(EngineError):
    """A stage image does not build from its Dockerfile (same exit code as other engine problems)."""


class StageFailed(LiveorchError):
    """A stage container failed; the message names the stage and its last error line."""

    exit_code = 4


class TargetError(LiveorchError):
    """The target directory cannot take the results."""

    exit_code = 5


class LockError(LiveorchError):
    """The lock file is missing, malformed, or does not fit the description."""

    exit_code = 5


class Interrupted(LiveorchError):
    exit_code = 130
