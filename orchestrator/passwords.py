"""Host-side hashing of plain-text user passwords from a description.

A `<user password="..." pwdformat="plain">` must never travel any further than the
parser: stage requests, cache keys, volumes, logs and reports only ever see a crypt
hash. Builds must also stay bit-identical, so the salt cannot be random; it is derived
from public inputs only (the description's name and the user's), never from the
password, so it reveals nothing about it and two runs give the same hash.

The hash is SHA-512-crypt (`$6$`), with many rounds so an offline guess stays expensive.
glibc's `crypt` module computes it when Python still ships it (up to 3.12); otherwise a
pure-Python implementation of Ulrich Drepper's specification ("Unix crypt using SHA-256
and SHA-512") takes over. Both give the same string, so the choice never shows in an
image or a cache key.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable

CRYPT_ROUNDS = 656_000  # passlib's default for sha512_crypt

ROUNDS_DEFAULT = 5000  # the spec's implicit count: no "rounds=" field in the string
ROUNDS_MIN = 1000
ROUNDS_MAX = 999_999_999
SALT_MAX = 16
CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_SALT_RE = re.compile(r"[./0-9A-Za-z]*")
_B64 = r"[./0-9A-Za-z]"
_FREE_SALT = r"[^$:\s]"
# Whole-string shapes, not prefixes: a plain password that merely starts with "$6$"
# must not be mistaken for a hash, or it would pass through unhashed.
_HASH_PATTERNS = tuple(re.compile(p) for p in (
    rf"\$1\${_FREE_SALT}{{0,8}}\${_B64}{{22}}",                       # MD5-crypt
    rf"\$5\$(?:rounds=[0-9]+\$)?{_FREE_SALT}{{0,16}}\${_B64}{{43}}",  # SHA-256-crypt
    rf"\$6\$(?:rounds=[0-9]+\$)?{_FREE_SALT}{{0,16}}\${_B64}{{86}}",  # SHA-512-crypt
    rf"\$2[by]\$[0-9]{{2}}\${_B64}{{53}}",                             # bcrypt
    rf"\$(?:y|gy)\${_B64}+\${_B64}*\${_B64}{{43}}",                    # (gost-)yescrypt
    rf"\$7\${_B64}{{11}}{_FREE_SALT}*\${_B64}{{43}}",                  # scrypt
))
_LOCKED_MARKERS = frozenset({"!", "*", "!*"})


def _load_glibc_crypt() -> Callable[[str, str], str | None] | None:
    """glibc is roughly 10x faster at 656k rounds; the module is gone from Python 3.13."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    if crypt.METHOD_SHA512 not in crypt.methods:
        return None
    return crypt.crypt


_GLIBC_CRYPT = _load_glibc_crypt()


def _clamp_rounds(rounds: int) -> int:
    """The spec clamps rather than rejects, and glibc fails on out-of-range counts: clamp first."""
    return max(ROUNDS_MIN, min(ROUNDS_MAX, rounds))


def _check_salt(salt: str) -> str:
    """Stray characters (':', '$', newlines) would corrupt /etc/shadow, so refuse them.

    Longer salts are truncated to 16 characters, as the spec and glibc both do.
    """
    if not _SALT_RE.fullmatch(salt):
        raise ValueError(f"salt {salt!r} must use only the crypt alphabet ./0-9A-Za-z")
    return salt[:SALT_MAX]


def _check_password(password: str) -> bytes:
    """A C string cannot hold NUL, so glibc could not hash it; refuse it on both paths alike."""
    if "\0" in password:
        raise ValueError("a password cannot contain a NUL character")
    return password.encode("utf-8")


def _setting(salt: str, rounds: int) -> str:
    """glibc leaves out "rounds=5000": it is the implicit count, and the hash is the same."""
    if rounds == ROUNDS_DEFAULT:
        return f"$6${salt}"
    return f"$6$rounds={rounds}${salt}"


def _repeat_to(block: bytes, length: int) -> bytes:
    """The spec stretches a 64-byte digest over a length of any size: whole copies, then a prefix."""
    return (block * (length // len(block) + 1))[:length]


def _initial_digest(secret: bytes, salt: bytes) -> bytes:
    """Steps 1-12 of the spec: the digest the rounds loop starts from."""
    alternate = hashlib.sha512(secret + salt + secret).digest()
    digest = hashlib.sha512(secret + salt + _repeat_to(alternate, len(secret)))
    length = len(secret)
    while length:
        # One addition per bit of the password length, low bit first.
        digest.update(alternate if length & 1 else secret)
        length >>= 1
    return digest.digest()


def _rounds_loop(start: bytes, p_bytes: bytes, s_bytes: bytes, rounds: int) -> bytes:
    """Step 21 of the spec, with the 42-round cycle of inputs prepared once.

    Each round hashes P-or-previous, then S when i % 3, then P when i % 7, then
    previous-or-P. The constant parts depend only on i % 42, so odd rounds copy a
    hasher already fed its constant prefix and even rounds append a constant suffix;
    that keeps the pure fallback usable at 656k rounds.
    """
    odd_prefixes: list[hashlib._Hash] = []  # hashers already fed P [+ S] [+ P], for odd rounds
    even_suffixes: list[bytes] = []  # [S] [+ P] + P, appended to the previous digest on even rounds
    for i in range(42):
        middle = (s_bytes if i % 3 else b"") + (p_bytes if i % 7 else b"")
        odd_prefixes.append(hashlib.sha512(p_bytes + middle))
        even_suffixes.append(middle + p_bytes)
    current = start
    for i in range(rounds):
        if i & 1:
            hasher = odd_prefixes[i % 42].copy()
            hasher.update(current)
            current = hasher.digest()
        else:
            current = hashlib.sha512(current + even_suffixes[i % 42]).digest()
    return current


def _encode(digest: bytes) -> str:
    """The spec's final base-64 step: bytes regrouped in a fixed order, least significant 6 bits first.

    Group i takes bytes i, i+21, i+42 rotated left by i % 3; byte 63 ends the string alone.
    """
    out: list[str] = []

    def emit(value: int, count: int) -> None:
        for _ in range(count):
            out.append(CRYPT_ALPHABET[value & 0x3F])
            value >>= 6

    for i in range(21):
        group = (i, i + 21, i + 42)
        first, second, third = group[i % 3:] + group[:i % 3]
        emit(digest[first] << 16 | digest[second] << 8 | digest[third], 4)
    emit(digest[63], 2)
    return "".join(out)


def _pure_sha512_crypt(password: str, salt: str, rounds: int = CRYPT_ROUNDS) -> str:
    """The fallback where Python has no `crypt` module; also what the tests compare glibc against."""
    secret = _check_password(password)
    salt = _check_salt(salt)
    rounds = _clamp_rounds(rounds)
    salt_bytes = salt.encode("ascii")
    start = _initial_digest(secret, salt_bytes)
    p_bytes = _repeat_to(hashlib.sha512(secret * len(secret)).digest(), len(secret))
    s_bytes = _repeat_to(hashlib.sha512(salt_bytes * (16 + start[0])).digest(), len(salt_bytes))
    final = _rounds_loop(start, p_bytes, s_bytes, rounds)
    return f"{_setting(salt, rounds)}${_encode(final)}"


def sha512_crypt(password: str, salt: str, rounds: int = CRYPT_ROUNDS) -> str:
    """Hash with glibc when available for speed, else in pure Python; the string is the same.

    The result is what /etc/shadow and KIWI's pwdformat="encrypted" expect.
    """
    _check_password(password)
    salt = _check_salt(salt)
    rounds = _clamp_rounds(rounds)
    if _GLIBC_CRYPT is not None:
        setting = _setting(salt, rounds)
        result = _GLIBC_CRYPT(password, setting)
        # glibc signals failure with None or a "*0"-style string; fall back rather than store it.
        if result is not None and result.startswith(setting + "$"):
            return result
    return _pure_sha512_crypt(password, salt, rounds)


def derive_salt(*public_parts: str) -> str:
    """A reproducible salt: same description, version and user give the same hash on every host.

    Only non-secret inputs may be passed; the salt ends up in clear in the hash. Parts are
    length-prefixed so ("ab", "c") and ("a", "bc") differ. With no parts every user
    everywhere would share one salt, which defeats it, so that is refused.
    """
    if not public_parts:
        raise ValueError("derive_salt needs at least one public part (e.g. image name, user name)")
    hasher = hashlib.sha256(b"liveorch-password-salt-v1\0")
    for part in public_parts:
        encoded = part.encode("utf-8")
        hasher.update(len(encoded).to_bytes(8, "big") + encoded)
    value = int.from_bytes(hasher.digest()[:12], "big")  # 96 bits = 16 characters of 6 bits
    return "".join(CRYPT_ALPHABET[(value >> (6 * i)) & 0x3F] for i in range(SALT_MAX))


def is_crypt_hash(value: str) -> bool:
    """Values already hashed, or locked/disabled markers, must pass through untouched.

    The whole string must have a known crypt shape, so a plain password that happens to
    start with "$6$" is still treated as plain and hashed, never passed on as is.
    A leading "!" (a locked account) is allowed in front of any such hash.
    """
    if value in _LOCKED_MARKERS:
        return True
    if value.startswith("!$"):
        value = value[1:]
    return any(pattern.fullmatch(value) for pattern in _HASH_PATTERNS)


def hash_plain_password(password: str, *public_parts: str) -> str:
    """The one call the description code needs: a plain password in, a reproducible strong hash out."""
    return sha512_crypt(password, derive_salt(*public_parts))
