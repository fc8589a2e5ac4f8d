"""rootfs's locales: localedef through chroot in the plan's order (no locale-archive, whose bytes
depend on that order), /etc/locale.gen enabled for a later locale-gen, and clear errors when
the image lacks a definition or a charmap."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from liveorch.stages.configure_root import configure_root, system_lang
from liveorch.stages.contracts.rootfs import GeneratedLocale
from liveorch.stages.locale_data import compile_locales, enable_in_locale_gen, localedef_argv
from liveorch.stages.tools import StageError

EN_US = GeneratedLocale(name="en_US.UTF-8", source="en_US", charmap="UTF-8")
DE_EURO = GeneratedLocale(name="de_DE.ISO-8859-15@euro", source="de_DE@euro", charmap="ISO-8859-15")
# As the locales package's postinst writes it: SUPPORTED, every line commented out.
LOCALE_GEN = ("# This file lists locales that you wish to have built.\n\n"
              "# de_DE ISO-8859-1\n# de_DE.UTF-8 UTF-8\n# de_DE@euro ISO-8859-15\n"
              "# en_US ISO-8859-1\n# en_US.UTF-8 UTF-8\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root with what `locales` installs: definitions, gzipped charmaps, a commented locale.gen."""
    root = tmp_path / "root"
    for relative in ("usr/share/i18n/locales/en_US", "usr/share/i18n/locales/de_DE@euro",
                     "usr/share/i18n/charmaps/UTF-8.gz", "usr/share/i18n/charmaps/ISO-8859-15.gz"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"fake\n")
    (root / "etc").mkdir()
    (root / "etc/locale.gen").write_text(LOCALE_GEN)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    return root


def test_localedef_runs_in_the_root_without_an_archive(root) -> None:
    assert localedef_argv(root, EN_US) == ["chroot", str(root), "localedef", "--no-archive", "-c",
                                           "-i", "en_US", "-f", "UTF-8", "en_US.UTF-8"]


def test_configure_root_compiles_the_plans_locales_in_order_before_users(root, rootfs_options, commands,
                                                                          epoch) -> None:
    options = dataclasses.replace(rootfs_options, generate_locales=(EN_US, DE_EURO))
    configure_root(root, options, epoch)

    assert [argv[:3] for argv in commands.argvs] == [["chroot", str(root), "localedef"],
                                                     ["chroot", str(root), "localedef"],
                                                     ["chroot", str(root), "useradd"]]
    assert commands.argvs[:2] == [localedef_argv(root, EN_US), localedef_argv(root, DE_EURO)]
    assert (root / "etc/default/locale").read_text() == "LANG=en_US.UTF-8\n"
    assert (root / "etc/locale.gen").read_text() == (
        "# This file lists locales that you wish to have built.\n\n"
        "# de_DE ISO-8859-1\n# de_DE.UTF-8 UTF-8\n# de_DE@euro ISO-8859-15\n"
        "# en_US ISO-8859-1\nen_US.UTF-8 UTF-8\n"
        "de_DE.ISO-8859-15@euro ISO-8859-15\n")  # not a SUPPORTED spelling: added, as locale-gen reads it


def test_nothing_to_compile_runs_nothing_and_keeps_locale_gen(root, rootfs_options, commands, epoch) -> None:
    """With locales-all (or a built-in locale) the plan asks for nothing."""
    configure_root(root, dataclasses.replace(rootfs_options, users=rootfs_options.users[:1]), epoch)
    assert commands.calls == []
    assert (root / "etc/locale.gen").read_text() == LOCALE_GEN


def test_enabling_twice_gives_the_same_file(root) -> None:
    enable_in_locale_gen(root, (EN_US,))
    once = (root / "etc/locale.gen").read_bytes()
    enable_in_locale_gen(root, (EN_US,))
    assert (root / "etc/locale.gen").read_bytes() == once
    assert (root / "etc/locale.gen").stat().st_mode & 0o777 == 0o644


def test_without_locale_gen_the_file_lists_the_locales(root) -> None:
    (root / "etc/locale.gen").unlink()
    enable_in_locale_gen(root, (EN_US, DE_EURO))
    assert (root / "etc/locale.gen").read_text() == "en_US.UTF-8 UTF-8\nde_DE.ISO-8859-15@euro ISO-8859-15\n"


def test_an_unknown_locale_stops_before_any_localedef(root, commands) -> None:
    missing = GeneratedLocale(name="xx_YY.UTF-8", source="xx_YY", charmap="UTF-8")
    with pytest.raises(StageError, match=r"unknown locale 'xx_YY': the image has no /usr/share/i18n/locales/xx_YY"):
        compile_locales(root, (EN_US, missing))
    assert commands.calls == []


def test_an_unknown_codeset_is_a_stage_error(root, commands) -> None:
    odd = GeneratedLocale(name="en_US.KOI8-Q", source="en_US", charmap="KOI8-Q")
    with pytest.raises(StageError, match=r"unknown codeset 'KOI8-Q' in en_US.KOI8-Q"):
        compile_locales(root, (odd,))
    assert commands.calls == []


@pytest.mark.parametrize(("locale", "lang"), [
    ("en_US", "en_US.UTF-8"), ("en_US,de_DE", "en_US.UTF-8"), ("de_DE@euro", "de_DE.UTF-8@euro"),
    ("en_US.ISO-8859-1", "en_US.ISO-8859-1"), ("C.UTF-8", "C.UTF-8"), ("POSIX", "POSIX"), ("C", "C"),
])
def test_system_lang_follows_kiwi(locale: str, lang: str) -> None:
    assert system_lang(locale) == lang
