"""The SPDX SBOM: license translation and a document that SPDX's own validator accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from liveorch.orchestrator.sbom import make_sbom, spdx_license
from liveorch.stages.package_info import dep5_licenses


@pytest.mark.parametrize(("names", "expected"), [
    (["GPL-2+"], "GPL-2.0-or-later"),
    (["GPL-2+", "LGPL-2.1+"], "GPL-2.0-or-later AND LGPL-2.1-or-later"),
    (["Expat", "Expat"], "MIT"),
    (["GPL-2+ or Artistic-2.0"], "(GPL-2.0-or-later OR Artistic-2.0)"),
    (["public-domain"], "LicenseRef-Debian-public-domain"),
    (["GPL-2+", "Something Odd"], "GPL-2.0-or-later AND LicenseRef-Debian-Something-Odd"),
    (["BSD-4-clause-UC and MIT-like"], "(LicenseRef-Debian-BSD-4-clause-UC AND LicenseRef-Debian-MIT-like)"),
    ([], "NOASSERTION"),
])
def test_debian_license_names_become_spdx_or_noassertion(names: list[str], expected: str) -> None:
    assert spdx_license(names) == expected


def test_dep5_copyright_licenses(tmp_path: Path) -> None:
    dep5 = tmp_path / "copyright"
    dep5.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
                    "Upstream-Name: x\n\nFiles: *\nCopyright: me\nLicense: GPL-2+\n\n"
                    "Files: lib/*\nCopyright: you\nLicense: LGPL-2.1+\n\nLicense: GPL-2+\n text\n")
    assert dep5_licenses(dep5) == ["GPL-2+", "LGPL-2.1+"]
    prose = tmp_path / "prose"
    prose.write_text("This package was debianized by someone.\nLicense: GPL\n")
    assert dep5_licenses(prose) == []
    assert dep5_licenses(tmp_path / "missing") == []


def test_sbom_validates_and_lists_every_package(tmp_path: Path) -> None:
    packages = [
        {"name": "bash", "version": "5.2.15-2+b2", "architecture": "amd64", "source": "bash",
         "maintainer": "Matthias Klose <doko@debian.org>", "homepage": "http://tiswww.case.edu/php/chet/bash/bashtop.html",
         "licenses": ["GPL-3+", "GPL-3+ with Bison exception", "permissive"]},
        {"name": "libc6", "version": "2.36-9+deb12u4", "architecture": "amd64", "source": "glibc",
         "maintainer": "GNU Libc Maintainers <debian-glibc@lists.debian.org>", "homepage": "", "licenses": []},
    ]
    lock = {"packages": [{"name": "bash", "sha256": "a" * 64}, {"name": "libc6", "sha256": "b" * 64}]}
    sbom = make_sbom("demo", "demo.x86_64-1.0.iso", "c" * 64, 1_700_000_000, packages, lock)
    path = tmp_path / "demo.spdx.json"
    path.write_text(json.dumps(sbom))
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    names = {p.name for p in document.packages}
    assert {"bash", "libc6", "demo.x86_64-1.0.iso"} == names
    assert sbom["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert {e["name"] for e in sbom["hasExtractedLicensingInfos"]} == {"GPL-3+ with Bison exception", "permissive"}
    again = make_sbom("demo", "demo.x86_64-1.0.iso", "c" * 64, 1_700_000_000, packages, lock)
    assert again == sbom, "the SBOM must be a pure function of its inputs"
