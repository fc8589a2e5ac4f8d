"""resolve: the exact package closure, downloaded and checked, plus the lock that pins it.

apt runs in a private root with an empty dpkg status, so the closure is what a fresh
image needs: the Essential set, apt itself (KIWI's debootstrap bootstrap is minbase) and
the requested packages, without Recommends. Every .deb is checked against the sha256 of
the repository index (apt-cache show), never against apt's --print-uris, which lacks
hashes for some suites.

A shared pool of .debs in the artifact volume makes later resolutions cheap; files are
taken from it only when their sha256 matches.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liveorch.stages.contract import ARTIFACTS_MOUNT, StageRequest
from liveorch.stages.tools import Outcome, StageError, capture, log, package_version, run, sha256_file

APT_ROOT = Path("/tmp/apt")
KEYRINGS = APT_ROOT / "keyrings"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
POOL = Path(ARTIFACTS_MOUNT) / "pool" / "debs"
LOCK_FORMAT = 1
INST_LINE = re.compile(r"^Inst (?P<name>\S+) (?:\[\S+\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)")


@dataclass(frozen=True)
class Repository:
    url: str
    suite: str
    components: tuple[str, ...]
    alias: str
    trusted: bool
    signing_keys: tuple[bytes, ...] = ()

    @classmethod
    def from_option(cls, data: dict[str, Any]) -> Repository:
        try:
            keys = tuple(base64.b64decode(key, validate=True) for key in data.get("signing_keys") or [])
        except (binascii.Error, TypeError):
            raise StageError(f"repository {data['url']}: signing_keys must be base64 strings") from None
        return cls(
            url=data["url"].rstrip("/"),
            suite=data["suite"],
            components=tuple(data.get("components") or ["main"]),
            alias=data.get("alias") or data["url"],
            trusted=bool(data.get("trusted", False)),
            signing_keys=keys,
        )

    def key_files(self, index: int) -> list[tuple[Path, bytes]]:
        """Where this repository's own keys go in the private apt root (apt tells an
        ASCII-armored key from a binary one by the name: .asc or .gpg)."""
        return [(KEYRINGS / f"repository{index}-key{number}.{'asc' if key.lstrip().startswith(b'-----') else 'gpg'}",
                 key) for number, key in enumerate(self.signing_keys)]

    def sources_line(self, index: int) -> str:
        """Signatures are checked against Debian's archive keys plus the repository's own
        signing keys, which apply to this repository only."""
        keyrings = [DEBIAN_KEYRING, *(str(file) for file, _ in self.key_files(index))]
        option = "[trusted=yes]" if self.trusted else f"[signed-by={','.join(keyrings)}]"
        return f"deb {option} {self.url} {self.suite} {' '.join(self.components)}"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    filename: str
    repository: str

    def spec(self) -> str:
        return f"{self.name}={self.version}"

    def deb_name(self) -> str:
        version = self.version.split(":", 1)[-1]
        return f"{self.name}_{version}_{self.architecture}.deb"


def _write_apt_config(repos: list[Repository], arch: str) -> dict[str, str]:
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "var/lib/dpkg", "var/lib/apt/lists/partial",
                "cache/archives/partial", "download"):
        (APT_ROOT / sub).mkdir(parents=True, exist_ok=True)
    (APT_ROOT / "var/lib/dpkg/status").write_text("")
    KEYRINGS.mkdir(exist_ok=True)
    for index, repo in enumerate(repos):
        for file, key in repo.key_files(index):
            file.write_bytes(key)
            file.chmod(0o644)
    (APT_ROOT / "etc/apt/sources.list").write_text("".join(r.sources_line(i) + "\n" for i, r in enumerate(repos)))
    config = f"""
Dir "{APT_ROOT}/";
Dir::State "{APT_ROOT}/var/lib/apt/";
Dir::State::status "{APT_ROOT}/var/lib/dpkg/status";
Dir::Etc "{APT_ROOT}/etc/apt/";
Dir::Cache "{APT_ROOT}/cache/";
APT::Architecture "{arch}";
APT::Architectures "{arch}";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "3";
"""
    (APT_ROOT / "apt.conf").write_text(config)
    return {**os.environ, "APT_CONFIG": str(APT_ROOT / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive"}


def _repository_lines(output: str, repo: Repository) -> list[str]:
    """apt's complaints about one repository: its Err/W:/E: lines and the indented reasons under them.

    A repository is its URL *and* suite (two repositories may share a URL, and one URL may
    prefix another's), so lines are matched on both.
    """
    pattern = re.compile(re.escape(repo.url) + r"/? " + re.escape(repo.suite) + r"\s")
    lines: list[str] = []
    under = False
    for line in output.splitlines():
        if line[:1].isspace():
            if under and line.strip():
                lines.append(line.strip())
            continue
        under = line.startswith(("Err", "E:", "W:")) and bool(pattern.search(line))
        if under:
            lines.append(line)
    return lines


def _update(env: dict[str, str], repos: list[Repository]) -> None:
    """apt-get update, with apt's reason for a failure turned into one actionable line."""
    completed = subprocess.run(["apt-get", "-q", "-o", "APT::Update::Error-Mode=any", "update"], env=env,
                               capture_output=True, text=True)
    output = completed.stdout + completed.stderr
    print(output, end="", flush=True)
    if completed.returncode == 0:
        return
    for repo in repos:
        lines = _repository_lines(output, repo)
        text = " ".join(lines)
        if not lines:
            continue
        named = f"repository {repo.url} {repo.suite}"
        if "NO_PUBKEY" in text:
            key = re.search(r"NO_PUBKEY (\S+)", text)
            checked = "Debian's archive keys" + (" and the repository's signing keys" if repo.signing_keys else "")
            raise StageError(f"{named} is signed by an unknown key ({key[0] if key else 'NO_PUBKEY'}); signatures are "
                             f"checked against {checked} (give its key with <signing key=\"file:///path\"/> or the "
                             "SPEC's {signing_keys}; repository_gpgcheck=\"false\" trusts it)")
        if "is not signed" in text or "signature" in text.lower():
            raise StageError(f"{named} is not signed, and signatures are required "
                             "(repository_gpgcheck=\"false\" trusts it without signatures)")
        if any(word in text for word in ("Could not resolve", "Could not connect", "Connection refused",
                                         "Failed to fetch", "404", "Temporary failure",
                                         "does not have a Release file")):
            raise StageError(f"{named} is unreachable or has no such suite ({lines[-1].strip()[:200]})")
    last = [ln for ln in output.splitlines() if ln.startswith(("E:", "W:", "Err"))][-1:] or ["no details"]
    raise StageError(f"apt-get update failed: {last[0][:300]}")


def _essential_names(env: dict[str, str]) -> list[str]:
    """Essential:yes packages of the configured repositories (what every root must hold)."""
    names: set[str] = set()
    for lists in (APT_ROOT / "var/lib/apt/lists").glob("*_Packages"):
        name = ""
        for line in lists.open(encoding="utf-8", errors="replace"):
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Essential: yes"):
                names.add(name)
    if not names:
        raise StageError("the repositories list no Essential packages: is the distribution/suite right?")
    return sorted(names)


def _simulate(specs: list[str], env: dict[str, str], repos: list[Repository]) -> list[tuple[str, str, str]]:
    completed = subprocess.run(["apt-get", "-s", "-q", "install", *specs], env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        missing = re.findall(r"Unable to locate package (\S+)", completed.stderr)
        searched = ", ".join(f"{r.url} {r.suite}" for r in repos)
        if missing:
            raise StageError(f"package not found: {', '.join(missing)} (searched: {searched})")
        errors = [ln for ln in completed.stdout.splitlines() + completed.stderr.splitlines() if ln.strip()]
        raise StageError("apt cannot resolve the package set: " + " | ".join(errors[-6:]))
    found = []
    for line in completed.stdout.splitlines():
        match = INST_LINE.match(line)
        if match:
            found.append((match["name"], match["version"], match["arch"]))
    return found


def _index_records(specs: list[str], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """name=version -> the first index record (apt-cache show lists the best source first)."""
    records: dict[str, dict[str, str]] = {}
    text = capture(["apt-cache", "show", "--no-all-versions", *specs], env=env)
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if "Package" in fields:
            records.setdefault(f"{fields['Package']}={fields['Version']}", fields)
    return records


def _origins(specs: list[str], env: dict[str, str], repos: list[Repository]) -> dict[str, str]:
    """name -> alias of the repository apt would download it from (by URL prefix)."""
    origins: dict[str, str] = {}
    text = capture(["apt-get", "-q", "download", "--print-uris", *specs], env=env)
    for line in text.splitlines():
        url, filename = line.split()[0].strip("'"), line.split()[1]
        alias = next((r.alias for r in repos if url.startswith(r.url + "/")), repos[0].alias)
        origins[filename.split("_", 1)[0]] = alias
    return origins


def _resolve_closure(requested: list[str], env: dict[str, str], repos: list[Repository]) -> list[Package]:
    specs = sorted(set(_essential_names(env)) | {"apt"} | set(requested))
    closure = _simulate(specs, env, repos)
    specs = [f"{n}={v}" for n, v, _ in closure]
    records = _index_records(specs, env)
    origins = _origins(specs, env, repos)
    packages = []
    for name, version, arch in closure:
        record = records.get(f"{name}={version}")
        if record is None or "SHA256" not in record:
            raise StageError(f"no index record with a sha256 for {name} {version}")
        packages.append(Package(name, version, arch, record["SHA256"], int(record["Size"]),
                                record["Filename"], origins[name]))
    return sorted(packages, key=lambda p: p.name)


def _locked(lock: dict[str, Any]) -> list[Package]:
    return sorted((Package(**entry) for entry in lock["packages"]), key=lambda p: p.name)


def _fetch(packages: list[Package], env: dict[str, str], debs: Path, offline: bool) -> int:
    """Put every .deb into `debs`, from the pool when it holds the same bytes; returns downloads."""
    POOL.mkdir(parents=True, exist_ok=True)
    wanted: list[Package] = []
    for package in packages:
        pooled = POOL / f"{package.sha256}.deb"
        if pooled.is_file():
            os.link(pooled, debs / package.deb_name())
        else:
            wanted.append(package)
    if wanted and offline:
        names = ", ".join(p.deb_name() for p in wanted[:5])
        raise StageError(f"offline, and {len(wanted)} locked package(s) are not in the package cache: {names}")
    if wanted:
        download = APT_ROOT / "download"
        run(["apt-get", "-q", "download", *[p.spec() for p in wanted]], env=env, cwd=download,
            what="downloading packages")
        by_name = {p.name: p for p in wanted}
        for file in download.glob("*.deb"):
            package = by_name[file.name.split("_", 1)[0]]
            if sha256_file(file) != package.sha256:
                raise StageError(f"sha256 mismatch for {file.name}: the repository index says {package.sha256}")
            pooled = POOL / f"{package.sha256}.deb"
            tmp = pooled.with_suffix(f".tmp{os.getpid()}")
            shutil.move(file, tmp)
            os.replace(tmp, pooled)
            os.link(pooled, debs / package.deb_name())
    for package in packages:
        if sha256_file(debs / package.deb_name()) != package.sha256:
            raise StageError(f"sha256 mismatch for {package.deb_name()} (locked {package.sha256})")
    return len(wanted)


def _newest_package_date(debs: Path) -> int:
    """The newest build time among the packages: each .deb's ar members carry it."""
    newest = 0
    for deb in debs.glob("*.deb"):
        with deb.open("rb") as handle:
            header = handle.read(8 + 60)
        newest = max(newest, int(header[8 + 16 : 8 + 28].strip() or 0))
    return newest


def execute(request: StageRequest, out: Path) -> Outcome:
    options = request.options
    repos = [Repository.from_option(r) for r in options["repositories"]]
    if not repos:
        raise StageError("no repositories configured")
    arch = options.get("architecture", "amd64")
    env = _write_apt_config(repos, arch)
    lock = options.get("lock")
    offline = bool(options.get("offline"))
    if offline and not lock:
        raise StageError("an offline build needs a lock (build once online, or run `liveorch lock`)")
    if not offline:
        _update(env, repos)
    if lock:
        packages = _locked(lock)
        log(f"using the lock: {len(packages)} packages")
    else:
        packages = _resolve_closure(list(options.get("packages", [])), env, repos)
        log(f"resolved {len(packages)} packages")
    debs = out / "debs"
    debs.mkdir()
    downloaded = _fetch(packages, env, debs, offline)
    log(f"{downloaded} downloaded, {len(packages) - downloaded} from the package pool")
    epoch = request.source_date_epoch or _newest_package_date(debs)
    lock_out = {
        "format": LOCK_FORMAT,
        "architecture": arch,
        "source_date_epoch": epoch,
        "repositories": [{"alias": r.alias, "url": r.url, "suite": r.suite, "components": list(r.components)}
                         for r in repos],
        "requested": sorted(options.get("packages", [])),
        "packages": [p.__dict__ for p in packages],
    }
    (out / "lock.json").write_text(json.dumps(lock_out, indent=1, sort_keys=True) + "\n")
    return Outcome(tools=package_version("apt"), facts={"source_date_epoch": epoch, "packages": len(packages)})
