"""rootfs: exactly the locked packages installed, configured, as one deterministic tar."""

from __future__ import annotations

from dataclasses import dataclass

from liveorch.stages.contract import Output, StageSpec

ROOT_TAR = "root.tar"
PACKAGES = "packages"
VERIFIED = "verified"
PACKAGE_INFO = "package-info.json"
# The description's files (root/, hooks, archives) as one tar, handed to this run only.
PAYLOAD_FILE = "payload.tar"


@dataclass(frozen=True)
class User:
    """An account; `password_hash` is a crypt(3) string made on the host ("*": no password),
    never a plain password."""

    name: str
    password_hash: str
    home: str | None
    shell: str | None
    groups: tuple[str, ...]
    id: int | None
    realname: str | None


@dataclass(frozen=True)
class AptSource:
    url: str
    suite: str
    components: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedLocale:
    """One locale localedef compiles into the root: `name` as LANG and /etc/locale.gen spell it
    (en_US.UTF-8), `source` the definition in /usr/share/i18n/locales (en_US, de_DE@euro),
    `charmap` the one in /usr/share/i18n/charmaps (UTF-8)."""

    name: str
    source: str
    charmap: str


@dataclass(frozen=True)
class RootfsOptions:
    """`payload_sha256`: the description payload in files/payload.tar (None: no files);
    `profile`: KIWI's /.profile variables for the hooks; `image_sources`: what stays in
    the image's sources.list (imageinclude="true"); `generate_locales`: what the plan found
    <locale> needs compiled (empty with locales-all, which ships them all)."""

    suite: str
    hostname: str
    locale: str | None
    keytable: str | None
    timezone: str | None
    generate_locales: tuple[GeneratedLocale, ...]
    users: tuple[User, ...]
    serial_console: str | None
    image_sources: tuple[AptSource, ...]
    payload_sha256: str | None
    archives: tuple[str, ...]
    delete_packages: tuple[str, ...]
    profile: dict[str, str]
    hook_timeout: int


SPEC = StageSpec(
    name="rootfs",
    summary="mmdebstrap from a flat repository of the locked .debs, the description applied, a sorted tar",
    options=RootfsOptions,
    inputs=("resolve",),
    outputs=(Output(ROOT_TAR), Output(PACKAGES, export="{basename}.packages"),
             Output(VERIFIED, export="{basename}.verified"), Output(PACKAGE_INFO)),
    # mmdebstrap in root mode: dpkg sets owners and modes, maintainer scripts switch users, chroot.
    capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SYS_CHROOT", "MKNOD",
                  "SETFCAP", "KILL"),
    user=0,
)
