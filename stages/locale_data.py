"""The description's locales compiled into the root, the same bytes on every build.

localedef runs inside the root (chroot), so the image's own glibc compiles the image's own
definitions (from the locales package, which the plan adds). Each locale gets its own
directory, /usr/lib/locale/<name>/ (--no-archive): compiled twice into fresh roots its files
are byte-identical, whereas the default locale-archive is a hash table whose bytes depend on
the order locales went into it. glibc reads both (the archive first), so a `locale-gen` run
later in the live system still works, and /etc/locale.gen lists the same locales, enabled, so
that it keeps them.
"""

from __future__ import annotations

from pathlib import Path

from liveorch.stages.contracts.rootfs import GeneratedLocale
from liveorch.stages.tools import StageError, log, run

LOCALE_GEN = "etc/locale.gen"
DEFINITIONS = "usr/share/i18n/locales"
CHARMAPS = "usr/share/i18n/charmaps"


def localedef_argv(root: Path, locale: GeneratedLocale) -> list[str]:
    """-c as Debian's locale-gen passes it: a definition with warnings is still written."""
    return ["chroot", str(root), "localedef", "--no-archive", "-c", "-i", locale.source, "-f", locale.charmap,
            locale.name]


def _check_sources(root: Path, locale: GeneratedLocale) -> None:
    """A clear message instead of localedef's when the image has no such definition or charmap."""
    if not (root / DEFINITIONS / locale.source).is_file():
        raise StageError(f"unknown locale {locale.source!r}: the image has no /{DEFINITIONS}/{locale.source} "
                         "(is the locales package installed?)")
    charmap = root / CHARMAPS / locale.charmap
    if not (charmap.is_file() or charmap.with_name(charmap.name + ".gz").is_file()):
        raise StageError(f"unknown codeset {locale.charmap!r} in {locale.name}: the image has no "
                         f"/{CHARMAPS}/{locale.charmap}.gz")


def enable_in_locale_gen(root: Path, locales: tuple[GeneratedLocale, ...]) -> None:
    """Uncomment each locale's line in the file the locales package made, or add it there."""
    path = root / LOCALE_GEN
    lines = path.read_text().splitlines() if path.is_file() else []
    for locale in locales:
        line = f"{locale.name} {locale.charmap}"
        if f"# {line}" in lines:
            lines[lines.index(f"# {line}")] = line
        elif line not in lines:
            lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(0o644)


def compile_locales(root: Path, locales: tuple[GeneratedLocale, ...]) -> None:
    """In the plan's order: localedef hard-links a file identical to one of an earlier locale,
    so the order is part of what makes the bytes the same."""
    if not locales:
        return
    for locale in locales:
        _check_sources(root, locale)
    for locale in locales:
        run(localedef_argv(root, locale), what=f"localedef {locale.name}")
    enable_in_locale_gen(root, locales)
    log(f"locales compiled into /usr/lib/locale (no archive): {', '.join(lc.name for lc in locales)}")
