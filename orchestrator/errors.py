"""Errors the user can act on. Each has one line to show, an optional hint and an exit code;
the CLI prints them without a traceback (unless --debug)."""

from __future__ import annotations


class LiveorchError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class DescriptionError(LiveorchError):
    """The description is broken or asks for something liveorch cannot build (file:line: ...)."""

    exit_code = 2

    def __init__(self, message: str, path: object = None, line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}", hint)


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


class Interrupted(LiveorchError):
    exit_code = 130
