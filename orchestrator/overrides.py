"""kiwi-ng's command-line changes to a description: --set-repo, --add-repo, --ignore-repos,
--add-package, --delete-package, --set-type-attr.

They are applied to the parsed XML tree before it is read, so a changed description goes
through exactly the same validation as a written one. A repository SPEC is KIWI's
comma-separated `source,type,alias,priority,imageinclude,package_gpgcheck,{signing_keys},
components,distribution,repo_gpgcheck`; empty fields keep their defaults, and an error
names the field.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lxml import etree

from liveorch.orchestrator.errors import DescriptionError, SpecError

SPEC_FIELDS = ("source", "type", "alias", "priority", "imageinclude", "package_gpgcheck", "signing_keys",
               "components", "distribution", "repo_gpgcheck")
_BOOLEANS = {"true": "true", "false": "false", "1": "true", "0": "false", "yes": "true", "no": "false"}


def _split_spec(spec: str) -> list[str]:
    """Split on commas outside {...} (signing keys may list several)."""
    parts, current, depth = [], "", 0
    for char in spec:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def parse_repo_spec(option: str, spec: str) -> etree._Element:
    parts = _split_spec(spec)
    if len(parts) > len(SPEC_FIELDS):
        raise SpecError(option, spec, f"{len(parts)} fields, at most {len(SPEC_FIELDS)}")
    values = dict(zip(SPEC_FIELDS, parts + [""] * (len(SPEC_FIELDS) - len(parts)), strict=True))
    if not values["source"]:
        raise SpecError(option, spec, "field 'source' (1) is empty")
    if not re.match(r"^(https?|file)://", values["source"]):
        raise SpecError(option, spec, "field 'source' (1) must be an http(s):// or file:// URL")
    if values["type"] not in ("", "apt-deb"):
        raise SpecError(option, spec, f"field 'type' (2) is {values['type']!r}: liveorch supports apt-deb")
    if values["priority"] and not re.fullmatch(r"[0-9]+", values["priority"]):
        raise SpecError(option, spec, f"field 'priority' (4) is {values['priority']!r}, not a number >= 0")
    for name in ("imageinclude", "package_gpgcheck", "repo_gpgcheck"):
        if values[name] and values[name].lower() not in _BOOLEANS:
            index = SPEC_FIELDS.index(name) + 1
            raise SpecError(option, spec, f"field {name!r} ({index}) is {values[name]!r}, not true/false")
    if values["signing_keys"] and not (values["signing_keys"].startswith("{") and values["signing_keys"].endswith("}")):
        raise SpecError(option, spec, "field 'signing_keys' (7) must be written in braces: {key;key}")
    if any(ord(char) < 32 for char in spec):
        raise SpecError(option, spec, "control characters are not allowed")
    keys = _signing_keys(option, spec, values["signing_keys"])
    repository = etree.Element("repository", type="apt-deb")
    repository.set("alias", values["alias"] or values["source"])
    for name, attribute in (("priority", "priority"), ("components", "components"),
                            ("distribution", "distribution")):
        if values[name]:
            repository.set(attribute, values[name])
    for name, attribute in (("imageinclude", "imageinclude"), ("package_gpgcheck", "package_gpgcheck"),
                            ("repo_gpgcheck", "repository_gpgcheck")):
        if values[name]:
            repository.set(attribute, _BOOLEANS[values[name].lower()])
    etree.SubElement(repository, "source", path=values["source"])
    for key in keys:
        etree.SubElement(repository, "signing", key=key)
    return repository


def _signing_keys(option: str, spec: str, field_value: str) -> list[str]:
    """{key;key}: key files on the host, each a path (relative to the working directory) or a
    file:// URI; returned as absolute file:// URIs for <signing key=...>."""
    keys = []
    for key in (k.strip() for k in field_value[1:-1].split(";")):
        if not key:
            continue
        location = key.removeprefix("file://")
        if "://" in location:
            raise SpecError(option, spec,
                            f"field 'signing_keys' (7): {key!r} is not a key file (a path or file:// URI)")
        file = Path(location).absolute()
        if not file.is_file():
            raise SpecError(option, spec, f"field 'signing_keys' (7): no such key file {str(file)!r}")
        keys.append(f"file://{file}")
    return keys


# --fast: the cheapest compressor KIWI's attributes name, for images built to be tried and
# thrown away (a bigger ISO, made much faster); it wins over the description and
# --set-type-attr. The erofs one applies only where the layout is erofs.
FAST_ATTRIBUTES = {"squashfscompression": "lz4", "erofscompression": "lz4"}


@dataclass
class Overrides:
    set_repo: str | None = None
    add_repos: list[str] = field(default_factory=list)
    ignore_repos: bool = False
    add_packages: list[str] = field(default_factory=list)
    delete_packages: list[str] = field(default_factory=list)
    type_attrs: list[str] = field(default_factory=list)
    fast: bool = False  # the development preset: lz4 for the root image (FAST_ATTRIBUTES)
    # Filled by apply(), so that messages name the option rather than the file: the elements
    # the options added (held, which keeps lxml's proxies and so their identity) and the
    # <type image="iso"> attributes they set.
    made: list[tuple[etree._Element, str]] = field(default_factory=list, init=False, repr=False,
                                                  compare=False)
    set_attributes: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def requested(self) -> dict[str, Any]:
        """The options as the user gave them, for report.json (and `rebuild`): not what apply()
        found out, which holds lxml elements."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.init}

    def apply(self, root: etree._Element, path: Path) -> None:
        self.made.clear()
        self.set_attributes.clear()
        try:
            self._repositories(root)
            self._packages(root)
            self._type_attributes(root)
        except ValueError as error:  # lxml refuses control characters in names and values
            raise DescriptionError(f"a command-line option holds characters XML cannot carry: {error}") from None

    def _repositories(self, root: etree._Element) -> None:
        existing = root.findall("repository")
        if self.ignore_repos:
            for element in existing:
                root.remove(element)
            existing = []
        if self.set_repo:
            replacement = parse_repo_spec("--set-repo", self.set_repo)
            self.made.append((replacement, f"--set-repo {self.set_repo}"))
            if existing:
                existing[0].getparent().replace(existing[0], replacement)
            else:
                root.append(replacement)
        for spec in self.add_repos:
            added = parse_repo_spec("--add-repo", spec)
            self.made.append((added, f"--add-repo {spec}"))
            root.append(added)

    def _packages(self, root: etree._Element) -> None:
        for kind, names in (("image", self.add_packages), ("delete", self.delete_packages)):
            if names:
                block = etree.SubElement(root, "packages", type=kind)
                for name in names:
                    if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
                        raise DescriptionError(f"--{'add' if kind == 'image' else 'delete'}-package {name!r} "
                                               "is not a Debian package name")
                    package = etree.SubElement(block, "package", name=name)
                    self.made.append((package, f"--{'add' if kind == 'image' else 'delete'}-package {name}"))

    def _type_attributes(self, root: etree._Element) -> None:
        types = [t for t in root.iter("type") if t.get("image") == "iso"]
        for setting in self.type_attrs:
            name, sep, value = setting.partition("=")
            if not sep or not re.fullmatch(r"[a-z_]+", name):
                raise DescriptionError(f"--set-type-attr {setting!r}: write ATTRIBUTE=VALUE")
            if not types:
                raise DescriptionError('--set-type-attr: the description has no <type image="iso">')
            for element in types:
                element.set(name, value)
            self.set_attributes[name] = f"--set-type-attr {setting}"
        if self.fast:
            for element in types:
                for name, value in FAST_ATTRIBUTES.items():
                    if name != "erofscompression" or element.get("filesystem") == "erofs":
                        element.set(name, value)
                        self.set_attributes[name] = "--fast"
