"""The part of KIWI's description schema liveorch knows, to warn about the rest.

Unknown elements and attributes are not errors (KIWI descriptions carry much that a live
ISO build does not use); each gets one note with its file and line, and a did-you-mean when
it is close to a known name, so a typo does not pass silently (`validate --strict` refuses
them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lxml import etree

from liveorch.orchestrator.findings import Finding, did_you_mean
from liveorch.orchestrator.source_map import SourceMap

_ANY = frozenset({"*"})
Where = Callable[[etree._Element, str | None], str]

# element -> attributes liveorch reads or knowingly ignores; "*" accepts any attribute.
KNOWN: dict[str, frozenset[str]] = {
    "image": frozenset({"schemaversion", "name", "displayname", "id", "noNamespaceSchemaLocation",
                        "schemaLocation"}),
    "description": frozenset({"type"}),
    "author": frozenset(), "contact": frozenset(), "specification": frozenset(), "license": frozenset(),
    "profiles": frozenset(),
    "profile": frozenset({"name", "description", "import", "arch"}),
    "requires": frozenset({"profile"}),
    "preferences": frozenset({"profiles", "arch"}),
    "version": frozenset(), "packagemanager": frozenset(), "locale": frozenset(), "keytable": frozenset(),
    "timezone": frozenset(), "bootloader-theme": frozenset(), "bootsplash-theme": frozenset(),
    "rpm-check-signatures": frozenset(), "rpm-excludedocs": frozenset(), "rpm-locale-filtering": frozenset(),
    "release-version": frozenset(), "showlicense": frozenset(), "defaultdestination": frozenset(),
    "defaultroot": frozenset(), "hwclock": frozenset(), "partitioner": frozenset(),
    "type": frozenset({"image", "primary", "flags", "hybridpersistent", "hybridpersistent_filesystem",
                       "mediacheck", "volid", "publisher", "application_id", "firmware", "kernelcmdline",
                       "squashfscompression", "efifatimagesize", "eficsm", "hybrid", "filesystem", "erofscompression",
                       "verity_blocks",
                       "bootpartition", "bootloader", "bootloader_console", "bootkernel", "boottimeout",
                       "editbootconfig", "editbootinstall", "profiles", "devicepersistency", "format",
                       "efiparttable", "efipartsize", "installiso", "installstick", "installpxe",
                       "initrd_system", "luks", "rootfs_label", "spare_part", "target_blocksize",
                       "overlayroot", "dosparttable_extended_layout", "btrfs_root_is_snapshot", "vga",
                       "wwid_wait_timeout", "xen_server", "zipl_targettype", "fsmountoptions"}),
    "bootloader": frozenset({"name", "console", "output_console", "input_console", "timeout", "timeout_style",
                             "serial_line", "targettype", "grub_template", "bls", "secure_boot"}),
    "bootloadersettings": _ANY, "shimoption": _ANY, "installoption": _ANY, "configoption": _ANY,
    "oemconfig": _ANY, "size": _ANY, "systemdisk": _ANY, "volume": _ANY, "machine": _ANY, "vmdisk": _ANY,
    "vmnic": _ANY, "vmdvd": _ANY, "vmconfig-entry": _ANY, "luksformat": _ANY, "option": _ANY,
    "containerconfig": _ANY, "installmedia": _ANY, "initrd": _ANY, "dracut": _ANY,
    "users": frozenset({"profiles", "arch"}),
    "user": frozenset({"name", "password", "pwdformat", "home", "shell", "groups", "id", "realname"}),
    "repository": frozenset({"type", "alias", "priority", "imageinclude", "repository_gpgcheck",
                             "package_gpgcheck", "components", "distribution", "architectures", "profiles",
                             "arch", "sourcetype", "customize", "password", "username", "use_for_bootstrap"}),
    "source": frozenset({"path"}),
    "signing": frozenset({"key"}),
    "packages": frozenset({"type", "profiles", "patternType", "arch"}),
    "package": frozenset({"name", "arch", "bootinclude", "bootdelete"}),
    "archive": frozenset({"name", "bootinclude", "arch", "target_dir"}),
    "namedCollection": frozenset({"name", "arch"}),
    "collectionModule": _ANY, "product": _ANY, "ignore": frozenset({"name", "arch"}),
    "drivers": _ANY, "file": _ANY, "strip": _ANY, "environment": _ANY, "env": _ANY,
    "labels": _ANY, "label": _ANY, "subvolumes": _ANY,
}


def _unknown_attributes(element: etree._Element, tag: str, known: frozenset[str], where: Where) -> list[str]:
    notes: list[str] = []
    for attribute in element.attrib:
        name = etree.QName(attribute).localname
        if name not in known:
            notes.append(Finding(where(element, name), f"unknown attribute {name}= on <{tag}> ignored",
                                 did_you_mean(name, known, "{}=")))
    return notes


def unknown_markup(root: etree._Element, path: Path, source: SourceMap | None = None) -> list[str]:
    """One Finding per unknown element or attribute, at its own line (or the option that set
    it), with a did-you-mean when a known name is close: `timout=` is a typo, `colour=` is not."""
    def where(element: etree._Element, attribute: str | None = None) -> str:
        return source.where(element, attribute) if source is not None else f"{path}:{element.sourceline}"

    warnings: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        tag = etree.QName(element).localname
        known = KNOWN.get(tag)
        if known is None:
            warnings.append(Finding(where(element), f"unknown element <{tag}> ignored",
                                    did_you_mean(tag, KNOWN, "<{}>")))
        elif known is not _ANY:
            warnings.extend(_unknown_attributes(element, tag, known, where))
    return warnings
