"""Host-side password hashing: the pure SHA-512-crypt against glibc, openssl and the spec's
vectors, the reproducible salt, and which values count as already hashed.

Round counts stay low (1000..10000) except for one call at CRYPT_ROUNDS, so this runs in
well under a second either way.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable

import pytest

from liveorch.orchestrator import passwords
from liveorch.orchestrator.passwords import (
    CRYPT_ALPHABET,
    CRYPT_ROUNDS,
    _pure_sha512_crypt,
    derive_salt,
    hash_plain_password,
    is_crypt_hash,
    sha512_crypt,
)

PASSWORDS = ["", "linux", "Hello world!", "x" * 100, "héllo wörld ✓ пароль"]
SALTS = ["ab", "saltstring", "saltstringsaltst"]
ROUNDS = [1000, 5000, 10000]


def glibc_crypt() -> Callable[[str, str], str | None] | None:
    """crypt.crypt on Python <= 3.12, None where the module is gone (3.13+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    return crypt.crypt


def setting(salt: str, rounds: int) -> str:
    return f"$6${salt}" if rounds == 5000 else f"$6$rounds={rounds}${salt}"


@pytest.mark.parametrize("rounds", ROUNDS)
@pytest.mark.parametrize("salt", SALTS)
@pytest.mark.parametrize("password", PASSWORDS)
def test_pure_matches_glibc(password: str, salt: str, rounds: int) -> None:
    crypt = glibc_crypt()
    if crypt is None:
        pytest.skip("no crypt module (Python 3.13+)")
    expected = crypt(password, setting(salt, rounds))
    assert _pure_sha512_crypt(password, salt, rounds) == expected
    assert sha512_crypt(password, salt, rounds) == expected


@pytest.mark.parametrize("salt", SALTS)
@pytest.mark.parametrize("password", [p for p in PASSWORDS if p])  # openssl 3.0 prints <NULL> for ""
def test_pure_matches_openssl(password: str, salt: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    # -stdin keeps the password out of the process list.
    result = subprocess.run([openssl, "passwd", "-6", "-salt", salt, "-stdin"], input=password + "\n",
                            capture_output=True, text=True, check=True, encoding="utf-8")
    assert _pure_sha512_crypt(password, salt, 5000) == result.stdout.strip()


# From Drepper's specification ("Unix crypt using SHA-256 and SHA-512"), SHA-512 section;
# also checked against glibc. (password, salt, rounds, expected)
SPEC_VECTORS = [
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/"
     "y3RnOaw5v."),
    ("This is just a test", "toolongsaltstring", 5000,  # the spec writes "rounds=5000$"; glibc's form omits it
     "$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "anotherlongsaltstring", 1400,
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8"
     "p4ur1"),
    ("we have a short salt string but not a short password", "short", 77777,
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
    ("the minimum number is still observed", "roundstoolow", 10,  # clamped up to 1000
     "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
]


@pytest.mark.parametrize(("password", "salt", "rounds", "expected"), SPEC_VECTORS)
def test_spec_vectors(password: str, salt: str, rounds: int, expected: str) -> None:
    assert _pure_sha512_crypt(password, salt, rounds) == expected
    assert sha512_crypt(password, salt, rounds) == expected


def test_fallback_used_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    password, salt, rounds, expected = SPEC_VECTORS[1]
    monkeypatch.setattr(passwords, "_GLIBC_CRYPT", None)
    assert sha512_crypt(password, salt, rounds) == expected
    # A failing glibc ("*0" or None) must not end up stored as the hash.
    monkeypatch.setattr(passwords, "_GLIBC_CRYPT", lambda _password, _setting: "*0")
    assert sha512_crypt(password, salt, rounds) == expected
    monkeypatch.setattr(passwords, "_GLIBC_CRYPT", lambda _password, _setting: None)
    assert sha512_crypt(password, salt, rounds) == expected


def test_rounds_field_and_clamping() -> None:
    assert sha512_crypt("x", "ab", 5000).startswith("$6$ab$")
    assert sha512_crypt("x", "ab", 1000).startswith("$6$rounds=1000$ab$")
    assert sha512_crypt("x", "ab", 1) == sha512_crypt("x", "ab", 1000)


def test_bad_salt_and_password_refused() -> None:
    for salt in ("a:b", "a$b", "a b", "é", "a\nb"):
        with pytest.raises(ValueError, match="salt"):
            sha512_crypt("x", salt, 1000)
    with pytest.raises(ValueError, match="NUL"):
        sha512_crypt("a\0b", "ab", 1000)


def test_long_salt_truncated_like_glibc() -> None:
    assert sha512_crypt("x", "abcdefghijklmnopqrst", 1000) == sha512_crypt("x", "abcdefghijklmnop", 1000)


def test_derive_salt_shape_and_determinism() -> None:
    salt = derive_salt("unit-live", "1.2.3", "root")
    assert len(salt) == 16
    assert set(salt) <= set(CRYPT_ALPHABET)
    assert salt == derive_salt("unit-live", "1.2.3", "root")


def test_derive_salt_follows_public_parts() -> None:
    base = derive_salt("unit-live", "1.2.3", "root")
    assert derive_salt("other-live", "1.2.3", "root") != base
    assert derive_salt("unit-live", "1.2.4", "root") != base
    assert derive_salt("unit-live", "1.2.3", "tux") != base
    assert derive_salt("ab", "c") != derive_salt("a", "bc")
    with pytest.raises(ValueError):
        derive_salt()


def test_salt_does_not_depend_on_password(monkeypatch: pytest.MonkeyPatch) -> None:
    real = passwords.sha512_crypt
    monkeypatch.setattr(passwords, "sha512_crypt", lambda password, salt: real(password, salt, 1000))
    first, second = hash_plain_password("a", "img", "root"), hash_plain_password("b", "img", "root")
    prefix = f"$6$rounds=1000${derive_salt('img', 'root')}$"
    assert first.startswith(prefix)
    assert second.startswith(prefix)
    assert first != second


def test_default_hash_is_strong_and_hides_password() -> None:
    password = "liveorch-plain-secret"
    result = hash_plain_password(password, "unit-live", "1.2.3", "root")  # the one call at CRYPT_ROUNDS
    assert result.startswith(f"$6$rounds={CRYPT_ROUNDS}${derive_salt('unit-live', '1.2.3', 'root')}$")
    assert password not in result
    assert is_crypt_hash(result)


CRYPT_HASHES = [
    "$1$abcdefgh$4zfeO8Fu5aAm8Xw6jDqzS/",
    "$5$abcdefgh$MerLKz5TjjOjwxaSwC.y5l4kHLb17m6NJpVMtm00t./",
    SPEC_VECTORS[0][3],
    SPEC_VECTORS[1][3],
    "$2b$05$abcdefghijklmnopqrstuuqmzf28YnF18P5JRe28wVQCyhMDlmlUa",
    "$2y$05$abcdefghijklmnopqrstuuqmzf28YnF18P5JRe28wVQCyhMDlmlUa",
    "$y$j9T$abcdefghijklmnop$FEH/U/w9q3gqHrnxTp5O2IT3/mQJXikN02xqfZ40Wq0",
    "$gy$j9T$abcdefghijklmnop$EqXJW21r/aSU2E2B6.l6QCXQ1Mj6FMnOl6./S2onruC",
    "$7$CU..../....abcdefghijklmnop$PXK9LKAAmxEAukH5GkQ6RxHr1Au2FD5QdFuVxVMqZB7",
]


@pytest.mark.parametrize("value", [*CRYPT_HASHES, "!", "*", "!*", "!" + CRYPT_HASHES[2], "!" + CRYPT_HASHES[6]])
def test_is_crypt_hash_accepts(value: str) -> None:
    assert is_crypt_hash(value)


@pytest.mark.parametrize("value", ["", "linux", "Hello world!", "$6$", "$6$short", "$6$salt$tooshort", "$y$j9T$",
                                   "$1$", "!linux", "**", "!$6$", "$6$saltstring$" + "a" * 85, CRYPT_HASHES[2] + "\n"])
def test_is_crypt_hash_rejects_plain(value: str) -> None:
    assert not is_crypt_hash(value)
