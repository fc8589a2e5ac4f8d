"""orchestrator.console: the serial transcript as plain text and the command protocol (markers,
output, exit codes), on console bytes recorded from a real boot of the example and on the
typed line run by a real local shell. No QEMU."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from liveorch.orchestrator.console import (
    CommandResult,
    check_command,
    clean_transcript,
    command_line,
    end_pattern,
    new_marker,
    parse_command_result,
    redact,
)
from liveorch.orchestrator.errors import UsageError

# The example ISO booted from CD with BIOS, `uname -r` run with the marker below; trimmed to
# GRUB's menu, two systemd status lines and everything from the login prompt on.
RECORDING = (Path(__file__).parent / "data" / "serial-console.raw").read_bytes()
RECORDED_MARKER = "LIVEORCH6f3b28cc78d6"
PROMPT = b"\x1b[?2004hroot@bookworm-live:~# "
SHELLS = [shell for shell in ("sh", "bash", "dash") if shutil.which(shell)]


def typed(command: str, marker: str, output: bytes, exit_code: int) -> bytes:
    """What the console shows for one command, in the recording's form: the echo (bracketed
    paste on, CR CR LF line ends), the output, the end marker, the next prompt."""
    echo = command_line(command, marker).encode().replace(b"\n", b"\r\r\n")
    body = output.replace(b"\n", b"\r\r\n")
    return (echo + b"\r\r\n\x1b[?2004l\r" + f"{marker}:begin".encode() + b"\r\r\n" + body + b"\r\r\n"
            + f"{marker}:end:{exit_code}".encode() + b"\r\r\n" + PROMPT)


def test_the_recorded_transcript_reads_as_plain_text() -> None:
    text = clean_transcript(RECORDING)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), "no escape sequences, CRs or other controls"
    lines = text.splitlines()
    assert "bookworm-live login: root" in lines
    assert "Password:" in lines
    assert "[  OK  ] Started systemd-ask-passwo…quests to Console Directory Watch." in lines
    assert "6.1.0-57-amd64" in lines


def test_grubs_full_screen_menu_becomes_one_line_per_row() -> None:
    lines = [line.strip() for line in clean_transcript(RECORDING).splitlines()]
    assert "*Debian bookworm live (liveorch)" in lines
    assert "Check installation media" in lines
    assert "Debian bookworm live (liveorch) (failsafe)" in lines
    assert "The highlighted entry will be executed automatically in 1s." in lines


@pytest.mark.parametrize(("raw", "text"), [
    (b"a\x1b[0;1;39mb\x1b[0m\r\r\n", "ab\n"),  # SGR colours
    (b"\x1b]0;root@host: ~\x07prompt", "prompt"),  # a window title (OSC ended by BEL)
    (b"\x1b]0;title\x1b\\x", "x"),  # ... ended by ST
    (b"\x1b(Bplain\x1b=\x1b>", "plain"),  # charset and keypad selection
    (b"progress 10%\rprogress 20%\r\n", "progress 10%\nprogress 20%\n"),  # a redrawn line keeps both
    (b"bell\x07, NUL\x00, back\x08space, SI\x0f", "bell, NUL, backspace, SI"),
    (b"box \xb3 in a code page", "box  in a code page"),  # not UTF-8
    (b"tab\tstays   \r\n", "tab\tstays\n"),
])
def test_escape_sequences_and_stray_controls_go(raw: bytes, text: str) -> None:
    assert clean_transcript(raw) == text


def test_a_sequence_split_across_reads_is_removed_once_the_whole_transcript_is_cleaned() -> None:
    reads = [b"[\x1b[0;3", b"2m  OK  \x1b", b"[0m] Started"]
    assert clean_transcript(b"".join(reads)) == "[  OK  ] Started"


def test_the_recorded_command_is_read_back_with_its_exit_code() -> None:
    assert re.search(end_pattern(RECORDED_MARKER), RECORDING), "pexpect's pattern matches the real line end"
    result = parse_command_result(clean_transcript(RECORDING), "uname -r", RECORDED_MARKER)
    assert result == CommandResult("uname -r", "6.1.0-57-amd64\n", 0)


def test_the_echo_of_the_typed_line_never_looks_like_a_marker() -> None:
    text = clean_transcript(RECORDING)
    assert text.count(f"{RECORDED_MARKER}:begin") == 1
    assert text.count(f"{RECORDED_MARKER}:end:") == 1
    assert not re.search(end_pattern("LIVEORCH000000000000"), command_line("true", "LIVEORCH000000000000").encode())


def test_several_commands_in_a_row_each_with_its_output_and_exit_code() -> None:
    commands = [("false", b"", 1), ("exit 3", b"", 3), ("printf 'no newline'", b"no newline", 0),
                ("ls --color=always -d /etc", b"\x1b[01;34m/etc\x1b[0m\n", 0)]
    markers = [new_marker() for _ in commands]
    raw = RECORDING + b"".join(typed(c, m, out, code) for (c, out, code), m in zip(commands, markers, strict=True))
    text = clean_transcript(raw)
    results = [parse_command_result(text, c, m) for (c, _, _), m in zip(commands, markers, strict=True)]
    assert [(r.output, r.exit_code, r.ok) for r in results] == [
        ("", 1, False), ("", 3, False), ("no newline", 0, True), ("/etc\n", 0, True)]


def test_a_missing_end_marker_is_not_guessed() -> None:
    with pytest.raises(ValueError, match="no output framed"):
        parse_command_result(clean_transcript(RECORDING), "true", new_marker())


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("command", "output", "exit_code"), [
    ("echo hello", "hello\n", 0),
    ("false", "", 1),
    ("exit 3", "", 3),  # ends the subshell only: the end marker still comes
    ("echo \"it's\" 'quoted' $((6*7))", "it's quoted 42\n", 0),
    ("printf 'no newline'", "no newline", 0),
    ("cat; echo after-cat", "after-cat\n", 0),  # stdin is /dev/null: the next typed line is not eaten
    ("echo a # a comment", "a\n", 0),
    ("true && false || exit 5", "", 5),
])
def test_the_typed_line_in_a_real_shell(shell: str, command: str, output: str, exit_code: int) -> None:
    """POSIX sh is all the line may need: a user's login shell may be dash."""
    marker = new_marker()
    line = command_line(command, marker)
    assert "\n" not in line
    ran = subprocess.run([shell, "-c", line], input="typed next\n", capture_output=True, text=True, timeout=30)
    assert parse_command_result(ran.stdout, command, marker) == CommandResult(command, output, exit_code)


@pytest.mark.parametrize("command", ["", "   ", "a\nb", "a\tb", "a\x1b[Ab", "a\x03"])
def test_a_command_must_be_one_line_of_text(command: str) -> None:
    with pytest.raises(UsageError):
        check_command(command)


def test_quotes_and_unicode_are_fine() -> None:
    assert check_command("echo 'ä' \"$HOME\" | tr a b") == "echo 'ä' \"$HOME\" | tr a b"


def test_markers_differ() -> None:
    assert len({new_marker() for _ in range(100)}) == 100


def test_a_password_echoed_after_its_prompt_is_hidden_and_the_word_stays_elsewhere() -> None:
    text = "Linux version 6.1 (linux)\nPassword: linux\nroot@live:~# uname\nLinux\n"
    hidden = redact(text, "linux")
    assert "Password: [hidden]" in hidden
    assert "(linux)" in hidden and "Linux\n" in hidden
    assert redact(text, "") == text


def test_the_recorded_login_shows_no_password() -> None:
    text = redact(clean_transcript(RECORDING), "linux")
    prompt_line = next(line for line in text.splitlines() if line.startswith("Password:"))
    assert prompt_line.strip() == "Password:"
