"""An SPDX 2.3 JSON SBOM of the packages in the image.

Names, versions and suppliers come from the image's dpkg database, checksums from the
lock (the .deb each package was installed from), licenses from Debian's machine-readable
copyright files, translated to SPDX identifiers where the Debian short name has an exact
SPDX equivalent and declared as LicenseRefs otherwise, never guessed from prose. Everything is derived from the
build's inputs and SOURCE_DATE_EPOCH, so the SBOM is as reproducible as the ISO.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from liveorch import __version__

# Debian (DEP-5) short license names -> SPDX identifiers, exact equivalents only.
DEBIAN_TO_SPDX = {
    "GPL-1": "GPL-1.0-only", "GPL-1+": "GPL-1.0-or-later",
    "GPL-2": "GPL-2.0-only", "GPL-2+": "GPL-2.0-or-later", "GPL-2.0": "GPL-2.0-only", "GPL-2.0+": "GPL-2.0-or-later",
    "GPL-3": "GPL-3.0-only", "GPL-3+": "GPL-3.0-or-later", "GPL-3.0+": "GPL-3.0-or-later",
    "LGPL-2": "LGPL-2.0-only", "LGPL-2+": "LGPL-2.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only", "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3": "LGPL-3.0-only", "LGPL-3+": "LGPL-3.0-or-later",
    "AGPL-3": "AGPL-3.0-only", "AGPL-3+": "AGPL-3.0-or-later",
    "Expat": "MIT", "MIT": "MIT", "ISC": "ISC", "Zlib": "Zlib", "zlib": "Zlib",
    "BSD-2-clause": "BSD-2-Clause", "BSD-2-Clause": "BSD-2-Clause",
    "BSD-3-clause": "BSD-3-Clause", "BSD-3-Clause": "BSD-3-Clause", "BSD-4-clause": "BSD-4-Clause",
    "Apache-2.0": "Apache-2.0", "Apache-2": "Apache-2.0", "MPL-2.0": "MPL-2.0", "CC0-1.0": "CC0-1.0",
    "CC0": "CC0-1.0", "Artistic-2.0": "Artistic-2.0", "OpenSSL": "OpenSSL", "Unicode-DFS-2016": "Unicode-DFS-2016",
    "BSL-1.0": "BSL-1.0", "Python-2.0": "Python-2.0", "curl": "curl", "X11": "X11", "0BSD": "0BSD",
}


def license_ref(name: str) -> str:
    return "LicenseRef-Debian-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")


def _term(name: str, refs: set[str]) -> str:
    """One Debian license term: its SPDX id, or a LicenseRef declared in the document."""
    mapped = DEBIAN_TO_SPDX.get(name)
    if mapped:
        return mapped
    refs.add(name)
    return license_ref(name)


def spdx_license(names: list[str], refs: set[str] | None = None) -> str:
    """An SPDX expression for all of a package's DEP-5 license names (AND), keeping Debian's
    `or`/`and` inside a name; names without an exact SPDX id become LicenseRefs."""
    refs = refs if refs is not None else set()
    terms = set()
    for name in names:
        alternatives = []
        for alternative in re.split(r"\s+or\s+", name.strip(), flags=re.IGNORECASE):
            parts = [_term(part.strip(), refs) for part in re.split(r"\s+and\s+", alternative, flags=re.IGNORECASE)
                     if part.strip()]
            alternatives.append(parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")")
        alternatives = [a for a in alternatives if a]
        if alternatives:
            terms.add(alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")")
    if not terms:
        return "NOASSERTION"
    ordered = sorted(terms)
    return ordered[0] if len(ordered) == 1 else " AND ".join(ordered)


def _spdx_id(name: str) -> str:
    return "SPDXRef-Package-deb-" + re.sub(r"[^A-Za-z0-9.-]", "-", name)


def _spdx_package(package: dict[str, Any], entry: dict[str, Any], refs: set[str]) -> dict[str, Any]:
    """One installed package as an SPDX package: its purl, license and the .deb's sha256."""
    item: dict[str, Any] = {
        "SPDXID": _spdx_id(package["name"]),
        "name": package["name"],
        "versionInfo": package["version"],
        "supplier": f"Organization: {package['maintainer']}" if package.get("maintainer") else "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": spdx_license(package.get("licenses", []), refs),
        "copyrightText": "NOASSERTION",
        "sourceInfo": f"built from Debian source package {package['source']}",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": f"pkg:deb/debian/{package['name']}@{package['version']}"
                                f"?arch={package['architecture']}",
        }],
    }
    if package.get("homepage"):
        item["homepage"] = package["homepage"]
    if entry.get("sha256"):
        item["checksums"] = [{"algorithm": "SHA256", "checksumValue": entry["sha256"]}]
    return item


def make_sbom(image_name: str, iso_name: str, iso_sha256: str, epoch: int, packages: list[dict[str, Any]],
              lock: dict[str, Any]) -> dict[str, Any]:
    locked = {entry["name"]: entry for entry in lock["packages"]}
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    refs: set[str] = set()
    spdx_packages = [_spdx_package(package, locked.get(package["name"], {}), refs) for package in packages]
    iso_id = "SPDXRef-ISO"
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": iso_name,
        "documentNamespace": f"https://liveorch.invalid/spdx/{image_name}/{iso_sha256}",
        "creationInfo": {"created": created, "creators": [f"Tool: liveorch-{__version__}"]},
        "documentDescribes": [iso_id],
        "packages": [{
            "SPDXID": iso_id,
            "name": iso_name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": iso_sha256}],
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        }, *spdx_packages],
        "hasExtractedLicensingInfos": [{
            "licenseId": license_ref(name),
            "name": name,
            "extractedText": f"The license Debian's machine-readable copyright files call '{name}'; its text is "
                             "in /usr/share/doc/<package>/copyright of the packages that name it.",
        } for name in sorted(refs)],
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": iso_id},
            *[{"spdxElementId": iso_id, "relationshipType": "CONTAINS", "relatedSpdxElement": p["SPDXID"]}
              for p in spdx_packages],
        ],
    }
