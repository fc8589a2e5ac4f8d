"""`liveorch init DIR`: the first description a newcomer builds, from a template shipped with liveorch.

The template is the bundled example (examples/bookworm-live, built and booted by CI) with the
newcomer's name and users, and comments that state every default liveorch applies, so nobody
gets xz compression or a locked account without having read that they would. Passwords are
written as SHA-512-crypt hashes with a random salt: the plain text never rests in the file.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import typer

from liveorch.orchestrator.description import NAME_PATTERN
from liveorch.orchestrator.errors import TargetError, UsageError
from liveorch.orchestrator.passwords import CRYPT_ALPHABET, SALT_MAX, sha512_crypt
from liveorch.orchestrator.plan import KIWI_ARCH, default_volid

CONFIG_NAME = "config.xml"
VERSION = "1.0.0"  # the template's <version>, which names the ISO
# The example's password, KIWI's for its test images, and what `liveorch test` logs in with by default.
DEFAULT_PASSWORD = "linux"
# Debian's useradd accepts these by default (NAME_REGEX), and /etc/passwd needs nothing escaped.
USER_PATTERN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class Suite(enum.StrEnum):
    """The Debian releases the template's repositories and packages exist for."""

    BOOKWORM = "bookworm"  # the bundled example's, built and booted by CI
    TRIXIE = "trixie"


@dataclass(frozen=True)
class InitRequest:
    directory: Path
    name: str | None = None  # default: the directory's own name
    suite: Suite = Suite.BOOKWORM
    user: str | None = None  # a login besides root
    password: str | None = None  # None: DEFAULT_PASSWORD
    force: bool = False


@dataclass(frozen=True)
class InitResult:
    path: Path
    name: str
    suite: Suite
    logins: tuple[str, ...]
    default_password: bool

    @property
    def iso_name(self) -> str:
        return f"{self.name}.{KIWI_ARCH}-{VERSION}.iso"


def image_name(directory: Path, name: str | None) -> str:
    """The directory's name is what a newcomer expects; it must still be a plain file name,
    since the ISO and its files are named after it."""
    chosen = name if name is not None else directory.resolve().name
    if not NAME_PATTERN.fullmatch(chosen):
        source = "--name" if name is not None else f"the directory's name {chosen!r}"
        raise UsageError(f"{source}: an image name is letters, digits and . _ + - (starting with a letter or "
                         "digit); give one with --name")
    return chosen


def check_user(user: str | None) -> None:
    """root always gets the password; a second root would be a second account with uid 0 in nobody's mind."""
    if user is None:
        return
    if user == "root":
        raise UsageError("--user root: root is always there; --user adds another login")
    if not USER_PATTERN.fullmatch(user):
        raise UsageError(f"--user {user!r}: a user name is lower-case letters, digits, '_' and '-', at most 32, "
                         "starting with a letter or '_'")


def random_salt() -> str:
    """A file written once needs no reproducible salt: a random one keeps equal passwords' hashes apart."""
    return "".join(secrets.choice(CRYPT_ALPHABET) for _ in range(SALT_MAX))


def user_elements(logins: tuple[str, ...], password: str) -> str:
    """root as in the example; another user gets a home, bash and the `users` group, as KIWI's examples do."""
    lines = []
    for login in logins:
        hashed = sha512_crypt(password, random_salt())
        if login == "root":
            lines.append(f'        <user name="root" password="{hashed}" home="/root" groups="root"/>')
        else:
            lines.append(f'        <user name="{login}" password="{hashed}" home="/home/{login}" shell="/bin/bash"'
                         ' groups="users"/>')
    return "\n".join(lines)


def render(name: str, suite: Suite, users: str, password_origin: str) -> str:
    """The template's placeholders are all filled (`substitute` refuses a missing one)."""
    template = Template(resources.files("liveorch.orchestrator").joinpath("templates", CONFIG_NAME).read_text())
    return template.substitute(name=name, displayname=f"{name} (Debian {suite} live)", suite=suite.value,
                               volid=default_volid(name), users=users, password_origin=password_origin)


def check_directory(directory: Path, force: bool) -> None:
    """Writing into a directory that holds something else could mix a description with foreign files
    (root/, config.sh); --force says the user means it, and then only config.xml is replaced."""
    if directory.exists() and not directory.is_dir():
        raise TargetError(f"{directory} exists and is not a directory")
    config = directory / CONFIG_NAME
    if config.is_dir() and not config.is_symlink():
        raise TargetError(f"{config} is a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise TargetError(f"{directory} is not empty: choose a new directory, or give --force to overwrite "
                          f"its {CONFIG_NAME}")


def write_file(path: Path, text: str) -> None:
    """Written whole under a temporary name, then renamed: never through a symlink, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def init_description(request: InitRequest) -> InitResult:
    name = image_name(request.directory, request.name)
    check_user(request.user)
    if request.password == "":
        raise UsageError("--password: an empty password would let anyone log in; give one, or leave the option "
                         f"out for {DEFAULT_PASSWORD!r}")
    check_directory(request.directory, request.force)
    logins = ("root", request.user) if request.user else ("root",)
    password = request.password if request.password is not None else DEFAULT_PASSWORD
    origin = ("the hash of the password given to liveorch init" if request.password is not None
              else f'the hash of "{DEFAULT_PASSWORD}", the bundled example\'s password')
    path = request.directory / CONFIG_NAME
    write_file(path, render(name, request.suite, user_elements(logins, password), origin))
    return InitResult(path=path, name=name, suite=request.suite, logins=logins,
                      default_password=request.password is None)


def chosen_password(password: str | None, ask: bool) -> str | None:
    """--ask-password keeps the password out of shell history and `ps`; the option (or
    LIVEORCH_INIT_PASSWORD) suits scripts. None means the documented default."""
    if not ask:
        return password
    if password is not None:
        raise UsageError("give --password or --ask-password, not both")
    return str(typer.prompt("Password for the logins", hide_input=True, confirmation_prompt=True))


def _password_line(result: InitResult) -> str:
    if result.default_password:
        return (f"password {DEFAULT_PASSWORD!r}, the bundled example's (liveorch test tries it by default); for your "
                "own, run init again with --force --ask-password")
    return "your password, stored as a SHA-512-crypt hash"


def _next_commands(result: InitResult, directory: Path) -> list[tuple[str, str]]:
    where = shlex.quote(str(directory))
    iso = shlex.quote(f"out/{result.iso_name}")
    user = result.logins[-1]
    test = f"liveorch test {iso}" + (f" --user {user}" if user != "root" else "")
    if not result.default_password:
        test += " --password ..."
    return [(f"liveorch validate {where}", "check it (no container engine needed)"),
            (f"liveorch run {where} --target-dir out", f"build {iso}"),
            (test, "boot it headless in QEMU and log in" + ("" if result.default_password
                                                            else " (or LIVEORCH_TEST_PASSWORD)"))]


def report_lines(result: InitResult, directory: Path) -> list[str]:
    """What was written, how to log in, and the next three commands, ready to paste."""
    lines = [f"wrote {result.path}: {result.name}, Debian {result.suite}",
             f"logins: {' and '.join(result.logins)}, {_password_line(result)}"]
    if result.suite is not Suite.BOOKWORM:
        lines.append(f"note: liveorch's CI builds and boots this description on bookworm, not on {result.suite}")
    commands = _next_commands(result, directory)
    width = max(len(command) for command, _ in commands)
    return [*lines, "next:", *(f"  {command:<{width}}  # {why}" for command, why in commands)]
