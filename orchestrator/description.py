"""The KIWI image description (config.xml), read safely into plain data.

The parser refuses DTDs and entities outright (no external fetches, no entity expansion),
limits the file size, and keeps every element's line so errors can point at it. Profile
selection happens here: what the rest of liveorch sees is the description as it applies
to the chosen profiles.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from lxml import etree

from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.kiwi_schema import unknown_markup
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.passwords import is_crypt_hash
from liveorch.orchestrator.root_layout import RootLayout, check_kernel_support, check_verity, parse_layout
from liveorch.orchestrator.source_map import SourceMap
from liveorch.stages.contracts.iso import Firmware, TimeoutStyle
from liveorch.stages.contracts.squashfs import Compression

MAX_DESCRIPTION_BYTES = 1 << 20
DESCRIPTION_NAMES = ("config.xml", "appliance.kiwi")
ARCH_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "i686": "i386", "i586": "i386", "aarch64": "arm64"}


class LiveFlags(enum.StrEnum):
    """How the read-only root is overlaid at boot: liveorch's module, or dracut's dmsquash-live."""

    OVERLAY = "overlay"
    DMSQUASH = "dmsquash"


class CowFilesystem(enum.StrEnum):
    """hybridpersistent_filesystem: what the persistent write layer is formatted as."""

    EXT4 = "ext4"
    XFS = "xfs"


Choice = TypeVar("Choice", bound=enum.StrEnum)


class PasswordFormat(enum.StrEnum):
    ENCRYPTED = "encrypted"
    PLAIN = "plain"


HOOKS = ("config.sh", "images.sh")
VOLID_PATTERN = re.compile(r"[A-Za-z0-9_.\- ]{1,32}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+~-]*")
MAX_SIGNING_KEY_BYTES = 1 << 20
ARMORED_KEY = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True)
class Repository:
    source: str
    alias: str
    distribution: str
    components: tuple[str, ...]
    trusted: bool
    priority: int | None = None
    imageinclude: bool = False
    signing_keys: tuple[bytes, ...] = ()  # <signing key=...>: OpenPGP public keys, armored or binary


@dataclass(frozen=True)
class User:
    name: str
    password: str | None
    pwdformat: PasswordFormat = PasswordFormat.ENCRYPTED
    home: str | None = None
    shell: str | None = None
    groups: tuple[str, ...] = ()
    id: int | None = None
    realname: str | None = None


@dataclass(frozen=True)
class LiveType:
    """<type image="iso"> and its <bootloader>."""

    flags: LiveFlags = LiveFlags.DMSQUASH
    firmware: Firmware = Firmware.EFI
    volid: str | None = None
    kernelcmdline: str = ""
    squashfscompression: Compression = Compression.XZ
    publisher: str | None = None
    application_id: str | None = None
    efifatimagesize: int | None = None
    mediacheck: bool = False
    hybridpersistent: bool = False
    hybridpersistent_filesystem: CowFilesystem = CowFilesystem.EXT4
    bootloader_console: str = ""
    bootloader_timeout: int = 10
    bootloader_timeout_style: TimeoutStyle = TimeoutStyle.MENU
    layout: RootLayout = field(default_factory=RootLayout)


@dataclass
class Description:
    path: Path
    name: str
    displayname: str
    version: str
    summary: str
    packagemanager: str
    locale: str | None
    keytable: str | None
    timezone: str | None
    live: LiveType
    repositories: list[Repository] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    delete_packages: list[str] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    profiles: tuple[str, ...] = ()
    archives: list[str] = field(default_factory=list)
    bootloader_theme: str | None = None
    warnings: list[str] = field(default_factory=list)  # Findings: unknown or ignored markup
    # Where the image-wide settings are ("config.xml:12", or the option that made them), for
    # the checks of what the image needs (image_checks: image, packages, users) and the notes
    # of what the plan adds for a setting (system_settings: locale, keytable, timezone).
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def hooks(self) -> list[str]:
        """config.sh and images.sh when present; a symlink at either name counts too (even a dangling
        one), so that the payload check refuses it rather than it being silently skipped."""
        return [name for name in HOOKS if (self.directory / name).is_symlink() or (self.directory / name).is_file()]

    @property
    def overlay(self) -> Path | None:
        overlay = self.directory / "root"
        if overlay.is_symlink():
            # Walking it would pull in whatever host directory it points to.
            raise DescriptionError(f"root/ is a symlink (root -> {os.readlink(overlay)}); the overlay must be a "
                                   "real directory", self.path)
        return overlay if overlay.is_dir() else None

    @property
    def directory(self) -> Path:
        return self.path.parent


def find_description(path: Path) -> Path:
    """A description file, or the KIWI file inside a description directory."""
    if path.is_dir():
        for name in DESCRIPTION_NAMES:
            if (path / name).is_file():
                return path / name
        raise DescriptionError(f"no {' or '.join(DESCRIPTION_NAMES)} in this directory", path)
    if not path.is_file():
        raise DescriptionError("no such description file", path)
    return path


def _load(path: Path) -> tuple[etree._Element, str]:
    """The parsed tree and the text (for attribute lines: SourceMap)."""
    data = path.read_bytes()
    if len(data) > MAX_DESCRIPTION_BYTES:
        raise DescriptionError(f"description larger than {MAX_DESCRIPTION_BYTES} bytes", path)
    offsets = [o for o in (data.find(b"<!DOCTYPE"), data.find(b"<!ENTITY")) if o >= 0]
    if offsets:
        line = data[: min(offsets)].count(b"\n") + 1
        raise DescriptionError("DTDs and entities are not allowed in a description", path, line)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        line = error.position[0] if error.position else None
        raise DescriptionError(f"malformed XML: {error.msg}", path, line) from None
    if root.getroottree().docinfo.doctype or root.getroottree().docinfo.internalDTD is not None:
        # Another encoding (UTF-16) hides the DTD from the byte check above.
        raise DescriptionError("DTDs and entities are not allowed in a description", path, 1)
    if root.tag != "image":
        raise DescriptionError(f"not a KIWI description: root element is <{root.tag}>, expected <image>",
                               path, root.sourceline)
    return root, data.decode("utf-8", errors="replace")


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def _int(element: etree._Element, attribute: str, source: SourceMap, default: int | None) -> int | None:
    value = element.get(attribute)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise source.error(f"{attribute}={value!r} is not a number", element, attribute) from None
    if number < 0:
        raise source.error(f"{attribute}={value!r} must not be negative", element, attribute)
    return number


def _choice(element: etree._Element, attribute: str, kind: type[Choice], default: Choice,
            source: SourceMap) -> Choice:
    value = element.get(attribute, default.value)
    choices = [member.value for member in kind]
    if value not in choices:
        raise source.error(f"{attribute}={value!r} must be one of {', '.join(choices)}", element, attribute)
    return kind(value)


class _Selector:
    """Keeps the elements that apply to the selected profiles (and those without profiles=)."""

    def __init__(self, root: etree._Element, path: Path, selected: tuple[str, ...]) -> None:
        known = {p.get("name") for p in root.iterfind("profiles/profile")}
        for name in selected:
            if name not in known:
                raise DescriptionError(f"unknown profile {name!r} (known: {', '.join(sorted(known)) or 'none'})",
                                       path)
        defaults = tuple(p.get("name") for p in root.iterfind("profiles/profile") if _bool(p.get("import")))
        self.active = set(selected or defaults)

    def applies(self, element: etree._Element) -> bool:
        profiles = element.get("profiles")
        if not profiles:
            return True
        return bool(self.active & {p.strip() for p in profiles.split(",")})

    def select(self, root: etree._Element, xpath: str) -> list[etree._Element]:
        return [e for e in root.iterfind(xpath) if self.applies(e)]


def _live_type(types: list[etree._Element], source: SourceMap, root: etree._Element,
               warnings: list[str]) -> LiveType:
    path = source.path
    isos = [t for t in types if t.get("image") == "iso"]
    if not isos:
        others = sorted({t.get("image", "?") for t in types})
        if others:
            raise DescriptionError(f"liveorch builds live ISOs only; the selected type is {', '.join(others)}",
                                   path, types[0].sourceline)
        raise DescriptionError('no <type image="iso"> in the selected preferences (does it need --profile?)',
                               path, root.sourceline)
    primary = [t for t in isos if _bool(t.get("primary"))]
    element = (primary or isos)[0]
    volid = element.get("volid")
    if volid is not None and not VOLID_PATTERN.fullmatch(volid):
        raise source.error(f"volid={volid!r}: use 1-32 letters, digits, '_', '-', '.' or spaces", element, "volid")
    bootloader = element.find("bootloader")
    console, timeout, style = "", 10, TimeoutStyle.MENU
    if bootloader is not None:
        console = bootloader.get("output_console") or bootloader.get("console") or ""
        timeout = _int(bootloader, "timeout", source, 10) or 0
        style = _choice(bootloader, "timeout_style", TimeoutStyle, TimeoutStyle.MENU, source)
    return LiveType(
        flags=_choice(element, "flags", LiveFlags, LiveFlags.DMSQUASH, source),
        firmware=_choice(element, "firmware", Firmware, Firmware.EFI, source),
        volid=volid,
        kernelcmdline=element.get("kernelcmdline", ""),
        squashfscompression=_choice(element, "squashfscompression", Compression, Compression.XZ, source),
        publisher=element.get("publisher"),
        application_id=element.get("application_id"),
        efifatimagesize=_int(element, "efifatimagesize", source, None),
        mediacheck=_bool(element.get("mediacheck")),
        hybridpersistent=_bool(element.get("hybridpersistent")),
        hybridpersistent_filesystem=_choice(element, "hybridpersistent_filesystem", CowFilesystem, CowFilesystem.EXT4,
                                            source),
        bootloader_console=console,
        bootloader_timeout=timeout,
        bootloader_timeout_style=style,
        layout=parse_layout(element, path, warnings, source),
    )


def _signing_key(signing: etree._Element, alias: str, path: Path) -> bytes:
    """The contents of a <signing key="..."/> file: a path or file:// URI, relative ones
    against the description directory."""
    key = signing.get("key") or ""
    named = f"signing key {key!r} of repository {alias!r}"
    if not key:
        raise DescriptionError(f"<signing> of repository {alias!r} needs key=\"file:///path\"", path,
                               signing.sourceline)
    location = key.removeprefix("file://")
    if "://" in location:
        raise DescriptionError(f"{named}: liveorch reads keys from files (a path or file:// URI)", path,
                               signing.sourceline)
    file = path.parent / location  # an absolute location stays as it is
    try:
        if file.stat().st_size > MAX_SIGNING_KEY_BYTES:
            raise DescriptionError(f"{named}: {file} is larger than {MAX_SIGNING_KEY_BYTES >> 20} MiB", path,
                                   signing.sourceline)
        data = file.read_bytes()
    except OSError as error:
        raise DescriptionError(f"{named}: cannot read {file}: {error.strerror or error}", path,
                               signing.sourceline) from None
    if not (data.lstrip().startswith(ARMORED_KEY) or (data and data[0] & 0x80)):
        raise DescriptionError(f"{named}: {file} is not an OpenPGP public key (ASCII-armored or binary)", path,
                               signing.sourceline)
    return data


def _repository(element: etree._Element, origin: SourceMap) -> Repository:
    path = origin.path
    source = element.find("source")
    if source is None or not source.get("path"):
        raise DescriptionError("<repository> needs <source path=...>", path, element.sourceline)
    kind = element.get("type", "apt-deb")
    if kind != "apt-deb":
        raise DescriptionError(f"repository type {kind!r}: liveorch supports apt-deb only (for now)",
                               path, element.sourceline)
    url = source.get("path", "")
    alias = element.get("alias") or url
    if not re.match(r"^(https?|file)://", url):
        raise origin.error(f"repository source {url!r} is not reachable from a build (use http(s):// or file://)",
                           source, "path", hint="replace it with --set-repo or --add-repo")
    return Repository(
        source=url,
        alias=alias,
        distribution=element.get("distribution") or "bookworm",
        components=tuple((element.get("components") or "main").split()),
        trusted=element.get("repository_gpgcheck", "true").lower() == "false" or url.startswith("file://"),
        priority=_int(element, "priority", origin, None),
        imageinclude=_bool(element.get("imageinclude")),
        signing_keys=tuple(_signing_key(s, alias, path) for s in element.iterfind("signing")),
    )


def _user(element: etree._Element, source: SourceMap) -> User:
    name = element.get("name")
    if not name:
        raise source.error("<user> needs a name", element)
    pwdformat = _choice(element, "pwdformat", PasswordFormat, PasswordFormat.ENCRYPTED, source)
    groups = tuple(g.strip() for g in (element.get("groups") or "").split(",") if g.strip())
    password = element.get("password")
    if password is not None and pwdformat is PasswordFormat.ENCRYPTED and not is_crypt_hash(password):
        raise source.error(f"user {name!r}: the password is not a crypt(3) hash; give pwdformat=\"plain\" for "
                           "a plain password (liveorch hashes it)", element, "password")
    return User(
        name=name,
        password=password,
        pwdformat=pwdformat,
        home=element.get("home"),
        shell=element.get("shell"),
        groups=groups,
        id=_int(element, "id", source, None),
        realname=element.get("realname"),
    )


def _packages(selector: _Selector, root: etree._Element, kinds: tuple[str, ...], arch: str) -> list[str]:
    names: list[str] = []
    for block in selector.select(root, "packages"):
        if block.get("type", "image") not in kinds:
            continue
        for package in block.iterfind("package"):
            wanted = [a.strip() for a in (package.get("arch") or "").split(",") if a.strip()]
            if wanted and arch not in {ARCH_ALIASES.get(a, a) for a in wanted}:
                continue
            name = package.get("name")
            if name and name not in names:
                names.append(name)
    return names


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def escape_from(directory: Path, name: str) -> str | None:
    """Why directory/name (a relative name without '..') leads out of directory, or None.

    Every symlink on the way (directories and the file itself) is checked: one that resolves
    outside the directory is the answer ('through the symlink archives -> /etc'); symlinks
    that stay inside are fine. Nothing is opened or read."""
    base = os.path.realpath(directory)
    current = directory
    for part in PurePosixPath(name).parts:
        current = current / part
        if current.is_symlink() and not _inside(os.path.realpath(current), base):
            link = current.relative_to(directory).as_posix()
            return f"through the symlink {link} -> {os.readlink(current)}"
    if not _inside(os.path.realpath(directory / name), base):
        return f"it resolves to {os.path.realpath(directory / name)}"
    return None


def _archives(selector: _Selector, root: etree._Element, path: Path) -> list[str]:
    names = []
    for block in selector.select(root, "packages"):
        for archive in block.iterfind("archive"):
            name = archive.get("name", "")
            candidate = PurePosixPath(name)
            if not name or candidate.is_absolute() or ".." in candidate.parts:
                raise DescriptionError(f"<archive name={name!r}> must name a file in the description directory",
                                       path, archive.sourceline)
            reason = escape_from(path.parent, name)
            if reason is not None:
                raise DescriptionError(f"archive {name} resolves outside the description directory ({reason})",
                                       path, archive.sourceline)
            if not (path.parent / name).is_file():
                raise DescriptionError(f"archive {name!r} not found beside the description", path, archive.sourceline)
            names.append(name)
    return names


def parse_description(path: Path, profiles: tuple[str, ...] = (), arch: str = "amd64",
                      overrides: Overrides | None = None) -> Description:
    path = find_description(path)
    root, text = _load(path)
    if overrides is not None:
        overrides.apply(root, path)
        source = SourceMap(path, text, overrides.made, overrides.set_attributes)
    else:
        source = SourceMap(path, text)
    warnings = unknown_markup(root, path, source)
    selector = _Selector(root, path, profiles)
    name = root.get("name")
    if not name or not NAME_PATTERN.fullmatch(name):
        raise DescriptionError(f"<image name={name!r}> must be a plain file name", path, root.sourceline)
    preferences = selector.select(root, "preferences")

    def pref_element(tag: str) -> etree._Element | None:
        """Later <preferences> blocks override earlier ones, as in KIWI."""
        found = [e for p in preferences for e in p.iterfind(tag) if e.text and e.text.strip()]
        return found[-1] if found else None

    def pref(tag: str) -> str | None:
        element = pref_element(tag)
        return element.text.strip() if element is not None and element.text else None

    manager = pref_element("packagemanager")
    if manager is not None and pref("packagemanager") not in ("apt", "apt-get"):
        raise DescriptionError(f"packagemanager {pref('packagemanager')!r} is not supported yet: liveorch builds "
                               "with apt", path, manager.sourceline)
    version = pref("version") or "1.0.0"
    if not VERSION_PATTERN.fullmatch(version):
        element = pref_element("version")
        raise DescriptionError(f"<version> {version!r} must be a plain version (letters, digits, . _ + ~ -)",
                               path, element.sourceline if element is not None else None)
    types = [t for p in preferences for t in p.iterfind("type")]
    repositories = [_repository(r, source) for r in selector.select(root, "repository")]
    if not repositories:
        raise DescriptionError("no <repository> applies to the selected profiles", path, root.sourceline)
    summary_element = root.find("description/specification")
    live = _live_type(types, source, root, warnings)
    check_kernel_support(live.layout, repositories[0].distribution, path)
    check_verity(live.layout, live.flags is LiveFlags.DMSQUASH, path)
    return Description(
        path=path,
        name=name,
        displayname=root.get("displayname") or name,
        version=version,
        summary=(summary_element.text or "").strip() if summary_element is not None else "",
        packagemanager="apt",
        locale=pref("locale"),
        keytable=pref("keytable"),
        timezone=pref("timezone"),
        live=live,
        repositories=repositories,
        packages=_packages(selector, root, ("image", "bootstrap", "iso"), arch),
        delete_packages=_packages(selector, root, ("delete", "uninstall"), arch),
        users=[_user(u, source) for block in selector.select(root, "users") for u in block.iterfind("user")],
        profiles=tuple(sorted(selector.active)),
        archives=_archives(selector, root, path),
        bootloader_theme=pref("bootloader-theme") or pref("bootsplash-theme"),
        warnings=warnings,
        origins=_origins(selector, root, source, pref_element),
    )


def _origins(selector: _Selector, root: etree._Element, source: SourceMap,
             pref_element: Callable[[str], etree._Element | None]) -> dict[str, str]:
    """Where the checks of what the image needs point: the setting's own element, else the
    first applicable block that would take the fix (<packages type="image">, <users>), else <image>."""
    origins = {"image": source.where(root)}
    for tag in ("locale", "keytable", "timezone"):
        element = pref_element(tag)
        if element is not None:
            origins[tag] = source.where(element)
    blocks = [b for b in selector.select(root, "packages") if b.get("type", "image") == "image"]
    written = [b for b in blocks if source.option(b) is None]  # not one --add-package made
    origins["packages"] = source.where(written[0]) if written else origins["image"]
    users = selector.select(root, "users")
    origins["users"] = source.where(users[0]) if users else origins["image"]
    return origins
