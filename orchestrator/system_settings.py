"""What a description's <timezone>, <locale> and <keytable> need in the image, and the locales to compile.

A KIWI description names them and expects them to work; on Debian each needs a package that a
minimal package list lacks, so, as with dracut, the plan adds what is missing, with a note:

- a time zone other than UTC needs tzdata's /usr/share/zoneinfo: the rootfs stage links
  /etc/localtime there and stops on an unknown zone (without /etc/localtime glibc and
  systemd use UTC, so UTC needs nothing);
- a locale other than glibc's built-in ones needs locale data: the plan adds `locales`,
  whose definitions the rootfs stage compiles with localedef, unless the description has
  locales-all (every locale, compiled) or locales already;
- a keytable other than the kernel's own us: the rootfs stage writes KEYMAP= to
  /etc/vconsole.conf, and systemd-vconsole-setup runs kbd's loadkeys with it, which reads
  the keymap from /usr/share/keymaps. In Debian only console-data ships keymaps by name;
  console-setup and keyboard-configuration ship none (setupcon compiles /etc/default/keyboard
  from XKB), so neither stands in for kbd or console-data.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.stages.contracts.rootfs import GeneratedLocale

ZONES_WITHOUT_TZDATA = frozenset({"UTC", "Etc/UTC"})
# Built into glibc, no locale data needed (C.UTF-8 since 2.35; bookworm has 2.36).
BUILTIN_LOCALES = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
BUILTIN_KEYTABLES = frozenset({"us"})
# language[_TERRITORY][.codeset][@modifier], glibc's names; nothing else reaches a path or argv in the root.
LOCALE_NAME = re.compile(r"(?P<language>[a-z]{2,3}(?:_[A-Z]{2})?)(?:\.(?P<codeset>[A-Za-z0-9-]+))?"
                         r"(?:@(?P<modifier>[a-z]+))?")
UTF8_SPELLINGS = frozenset({"utf8", "utf-8"})


class Setting(enum.StrEnum):
    """The <preferences> elements whose working needs packages."""

    TIMEZONE = "timezone"
    LOCALE = "locale"
    KEYTABLE = "keytable"


class LocaleData(enum.StrEnum):
    """Debian's two sources of compiled locales."""

    COMPILED_HERE = "locales"  # definitions; the rootfs stage runs localedef
    ALL_COMPILED = "locales-all"  # every locale, compiled by the package


# Why each package is added, for the note (after "added PACKAGE, ").
REASONS = {
    "tzdata": "which ships /usr/share/zoneinfo (the rootfs stage links /etc/localtime there)",
    LocaleData.COMPILED_HERE.value: "whose definitions the rootfs stage compiles with localedef",
    "kbd": "whose loadkeys systemd-vconsole-setup runs with KEYMAP= from /etc/vconsole.conf",
    "console-data": "which ships the keymaps loadkeys reads (/usr/share/keymaps)",
}


@dataclass(frozen=True)
class Addition:
    """A package the plan adds for a setting, and the note that says so."""

    package: str
    note: str


def _entries(description: Description) -> list[str]:
    """KIWI's <locale> is a comma-separated list: the first is the system's LANG, all are made."""
    return [entry.strip() for entry in (description.locale or "").split(",") if entry.strip()]


def _generated(entry: str, where: str) -> GeneratedLocale:
    """KIWI's en_US means en_US.UTF-8; a codeset given is kept, a modifier stays last (de_DE.UTF-8@euro)."""
    match = LOCALE_NAME.fullmatch(entry)
    if match is None:
        raise DescriptionError(f"<locale>: {entry!r} is not a locale name", where, None,
                               hint="language_TERRITORY, optionally .codeset and @modifier: en_US, de_DE.UTF-8")
    codeset = match["codeset"] or "UTF-8"
    charmap = "UTF-8" if codeset.lower() in UTF8_SPELLINGS else codeset.upper()
    modifier = f"@{match['modifier']}" if match["modifier"] else ""
    return GeneratedLocale(name=f"{match['language']}.{charmap}{modifier}",
                           source=match["language"] + modifier, charmap=charmap)


def _needed_locales(description: Description) -> tuple[GeneratedLocale, ...]:
    """Every listed locale glibc lacks, once each, in the description's order."""
    where = description.origins.get(Setting.LOCALE, str(description.path))
    found: dict[str, GeneratedLocale] = {}
    for entry in _entries(description):
        if entry not in BUILTIN_LOCALES:
            generated = _generated(entry, where)
            found.setdefault(generated.name, generated)
    return tuple(found.values())


def locales_to_generate(description: Description) -> tuple[GeneratedLocale, ...]:
    """What the rootfs stage compiles: nothing with locales-all, which has every locale already."""
    if LocaleData.ALL_COMPILED in description.packages:
        return ()
    return _needed_locales(description)


def _wanted(description: Description) -> dict[Setting, tuple[str, ...]]:
    """The packages each setting the description makes needs, whether or not it lists them."""
    wanted: dict[Setting, tuple[str, ...]] = {}
    zone = description.timezone
    if zone and zone not in ZONES_WITHOUT_TZDATA:
        wanted[Setting.TIMEZONE] = ("tzdata",)
    packages = set(description.packages)
    if _needed_locales(description) and not {data.value for data in LocaleData} & packages:
        wanted[Setting.LOCALE] = (LocaleData.COMPILED_HERE.value,)
    keytable = (description.keytable or "").strip()
    if keytable and keytable not in BUILTIN_KEYTABLES:
        wanted[Setting.KEYTABLE] = ("kbd", "console-data")
    return wanted


def setting_packages(description: Description) -> list[Addition]:
    """The packages the settings need that the description does not list, each with its note."""
    values = {Setting.TIMEZONE: description.timezone, Setting.LOCALE: description.locale,
              Setting.KEYTABLE: description.keytable}
    additions = []
    for setting, packages in _wanted(description).items():
        where = description.origins.get(setting, str(description.path))
        element = f"<{setting}>{values[setting]}</{setting}> ({where})"
        additions += [Addition(package, f"{element}: added {package}, {REASONS[package]}")
                      for package in packages if package not in description.packages]
    return additions
