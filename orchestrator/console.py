"""What liveorch types on a guest's serial console and how it reads the answers back.

The console is a terminal, not a pipe: it echoes what is typed, the guest's programs colour
and redraw their output with escape sequences, and kernel messages can arrive at any time.
So each command is framed by markers that only the shell can print (the typed line holds the
marker in two halves, so its echo never matches), the exit code travels inside the end
marker, and the transcript is cleaned once, as a whole, because escape sequences arrive split
across reads.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass

from liveorch.orchestrator.errors import UsageError

# ECMA-48: CSI (ESC [ ... final), OSC/DCS/APC/PM strings (ended by BEL or ST), other ESC sequences
# (charset selection `ESC ( B`, keypad modes `ESC =`, cursor save `ESC 7`, reset `ESC c`).
ESCAPE_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"
                              r"|\x1b[\]P_^X][^\x07\x1b\r\n]{0,512}(?:\x07|\x1b\\)?"
                              r"|\x1b[ -/]*[0-~]"
                              r"|\x9b[0-?]*[ -/]*[@-~]")
# Every other C0/C1 control character and DEL, except tab and newline; U+FFFD stands for bytes
# that were not UTF-8 (firmware menus drawing boxes in a code page).
STRAY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\ufffd]")
CURSOR_POSITION = re.compile(r"\x1b\[(\d*)(?:;\d*)?[Hf]")
TRAILING_BLANKS = re.compile(r"[ \t]+(?=\n)")
PASSWORD_PROMPT = re.compile(r"(?im)^(.*password: ?)(.*)$")


@dataclass(frozen=True)
class CommandResult:
    command: str
    output: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def clean_transcript(raw: bytes) -> str:
    """Serial output as plain text: escape sequences and stray control characters gone, CR LF
    and lone CRs (a line redrawn in place) as newlines, so every line that was shown stays;
    a full-screen menu (GRUB's) drawn by moving the cursor becomes one line per screen row."""
    text = _cursor_rows_as_lines(raw.decode("utf-8", errors="replace"))
    text = ESCAPE_SEQUENCES.sub("", text)
    text = re.sub(r"\r+\n?", "\n", text)
    return TRAILING_BLANKS.sub("", STRAY_CONTROLS.sub("", text))


def _cursor_rows_as_lines(text: str) -> str:
    """A jump to another row is a line break, a jump within the row a space: without this,
    GRUB's menu would read as one line of run-together entries."""
    row: list[str] = []

    def replace(move: re.Match[str]) -> str:
        target = move.group(1) or "1"
        same = row[-1:] == [target]
        row[:] = [target]
        return " " if same else "\n"

    return CURSOR_POSITION.sub(replace, text)


def redact(text: str, secret: str) -> str:
    """A password never reaches a log: the console does not echo it, but should a guest echo
    it after its prompt, it is hidden there. Only on the prompt's line: a short password
    (`linux`) is also an ordinary word everywhere else in a boot."""
    if not secret:
        return text
    return PASSWORD_PROMPT.sub(lambda m: m.group(1) + m.group(2).replace(secret, "[hidden]"), text)


def check_command(command: str) -> str:
    """One line of printable text: a newline would start the next command early, a tab would
    ask the guest's shell to complete, other control characters are keys, not text."""
    if not command.strip():
        raise UsageError("--command is empty")
    if STRAY_CONTROLS.search(command) or "\n" in command or "\t" in command or "\x1b" in command:
        raise UsageError(f"--command {command[:60]!r} must be one line of text",
                         hint="chain commands with ';' or '&&', or pass --command again")
    return command


def new_marker() -> str:
    """Unpredictable, so neither a command's output nor the boot can contain it by chance."""
    return f"LIVEORCH{secrets.token_hex(6)}"


def command_line(command: str, marker: str) -> str:
    """The line typed for one command: a begin marker, the command in a subshell (an `exit` in
    it ends only the subshell; stdin is /dev/null so it cannot swallow the next typed line),
    then its exit code inside the end marker. POSIX sh only: the user's shell may be dash."""
    head, tail = marker[:4], marker[4:]
    return (f"printf '%s%s:begin\\n' {head} {tail}; (eval {shlex.quote(command)}) </dev/null; "
            f"printf '\\n%s%s:end:%s\\n' {head} {tail} \"$?\"")


def end_pattern(marker: str) -> bytes:
    """What pexpect waits for in the raw console stream: a serial line ends in CR CR LF."""
    return rf"{marker}:end:\d+\r*\n".encode()


def parse_command_result(transcript: str, command: str, marker: str) -> CommandResult:
    """The command's output and exit code from the cleaned transcript. The end marker's
    printf starts with a newline of its own (the output may not end in one), removed here."""
    found = re.search(rf"{marker}:begin\n(.*?)\n{marker}:end:(\d+)\n", transcript, re.DOTALL)
    if found is None:
        raise ValueError(f"no output framed by {marker} in the transcript")
    return CommandResult(command, found.group(1), int(found.group(2)))
