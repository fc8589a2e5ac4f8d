"""resolve: the exact package closure, downloaded and checked, plus the lock that pins it.

apt runs in a private root with an empty dpkg status, so the closure is what a fresh
image needs: the Essential set, apt itself (KIWI's debootstrap bootstrap is minbase) and
the requested packages, without Recommends. Every .deb is checked against the sha256 of
the repository index (apt-cache show), never against apt's --print-uris, which lacks
hashes for some suites.

The store's package pool (read-only here; the publisher fills it from this stage's
outputs) makes later resolutions cheap: a pooled file is copied and checked, never trusted.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from liveorch.stages.contract import Outcome, StageRequest, Workspace, encode
from liveorch.stages.contracts.resolve import (
    DEBS,
    LOCK,
    LOCK_FORMAT,
    AptRepository,
    Lock,
    LockedPackage,
    LockedRepository,
    ResolveOptions,
    deb_name,
)
from liveorch.stages.download_progress import DownloadProgress
from liveorch.stages.tools import StageError, capture, copy_checked, fresh_dir, log, package_version, run, sha256_file

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
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
    def from_option(cls, option: AptRepository) -> Repository:
        try:
            keys = tuple(base64.b64decode(key, validate=True) for key in option.signing_keys)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise StageError(f"repository {option.url}: signing_keys must be base64 strings") from None
        return cls(url=option.url.rstrip("/"), suite=option.suite, components=option.components or ("main",),
                   alias=option.alias or option.url, trusted=option.trusted, signing_keys=keys)

    def key_files(self, keyrings: Path, index: int) -> list[tuple[Path, bytes]]:
        """Where this repository's own keys go in the private apt root (apt tells an
        ASCII-armored key from a binary one by the name: .asc or .gpg)."""
        return [(keyrings / f"repository{index}-key{number}.{'asc' if key.lstrip().startswith(b'-----') else 'gpg'}",
                 key) for number, key in enumerate(self.signing_keys)]

    def sources_line(self, keyrings: Path, index: int) -> str:
        """Signatures are checked against Debian's archive keys plus the repository's own
        signing keys, which apply to this repository only."""
        keyrings_used = [DEBIAN_KEYRING, *(str(file) for file, _ in self.key_files(keyrings, index))]
        option = "[trusted=yes]" if self.trusted else f"[signed-by={','.join(keyrings_used)}]"
        return f"deb {option} {self.url} {self.suite} {' '.join(self.components)}"


def spec_of(package: LockedPackage) -> str:
    return f"{package.name}={package.version}"


def write_apt_config(apt_root: Path, repos: list[Repository], arch: str) -> dict[str, str]:
    """A private apt root: its own sources, keys, lists and cache; returns apt's environment."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "var/lib/dpkg", "var/lib/apt/lists/partial",
                "cache/archives/partial", "download", "keyrings"):
        (apt_root / sub).mkdir(parents=True, exist_ok=True)
    (apt_root / "var/lib/dpkg/status").write_text("")
    keyrings = apt_root / "keyrings"
    for index, repo in enumerate(repos):
        for file, key in repo.key_files(keyrings, index):
            file.write_bytes(key)
            file.chmod(0o644)
    (apt_root / "etc/apt/sources.list").write_text(
        "".join(r.sources_line(keyrings, i) + "\n" for i, r in enumerate(repos)))
    config = f"""
Dir "{apt_root}/";
Dir::State "{apt_root}/var/lib/apt/";
Dir::State::status "{apt_root}/var/lib/dpkg/status";
Dir::Etc "{apt_root}/etc/apt/";
Dir::Cache "{apt_root}/cache/";
APT::Architecture "{arch}";
APT::Architectures "{arch}";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "3";
"""
    (apt_root / "apt.conf").write_text(config)
    return {**os.environ, "APT_CONFIG": str(apt_root / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive"}


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


def _essential_names(apt_root: Path) -> list[str]:
    """Essential:yes packages of the configured repositories (what every root must hold)."""
    names: set[str] = set()
    for lists in (apt_root / "var/lib/apt/lists").glob("*_Packages"):
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


def _resolve_closure(requested: tuple[str, ...], env: dict[str, str], apt_root: Path,
                     repos: list[Repository]) -> list[LockedPackage]:
    specs = sorted(set(_essential_names(apt_root)) | {"apt"} | set(requested))
    closure = _simulate(specs, env, repos)
    specs = [f"{n}={v}" for n, v, _ in closure]
    records = _index_records(specs, env)
    origins = _origins(specs, env, repos)
    packages = []
    for name, version, arch in closure:
        record = records.get(f"{name}={version}")
        if record is None or "SHA256" not in record:
            raise StageError(f"no index record with a sha256 for {name} {version}")
        packages.append(LockedPackage(name, version, arch, record["SHA256"], int(record["Size"]),
                                      record["Filename"], origins[name]))
    return sorted(packages, key=lambda p: p.name)


def fetch(packages: list[LockedPackage], env: dict[str, str], download: Path, pool: Path, debs: Path,
          offline: bool) -> int:
    """Put every .deb into `debs`: copied from the pool when it holds the same bytes, else
    downloaded; each checked against its sha256. Returns how many were downloaded."""
    wanted: list[LockedPackage] = []
    for package in packages:
        pooled = pool / f"{package.sha256}.deb"
        try:
            if pooled.is_file():
                copy_checked(pooled, debs / deb_name(package), package.sha256)
                continue
        except StageError:
            log(f"the pooled copy of {deb_name(package)} does not match its sha256: not used")
        wanted.append(package)
    if wanted and offline:
        names = ", ".join(deb_name(p) for p in wanted[:5])
        raise StageError(f"offline, and {len(wanted)} locked package(s) are not in the package cache: {names}")
    if wanted:
        with DownloadProgress(download, sum(p.size for p in wanted), len(wanted)):
            run(["apt-get", "-q", "download", *[spec_of(p) for p in wanted]], env=env, cwd=download,
                what="downloading packages")
        by_name = {p.name: p for p in wanted}
        for file in download.glob("*.deb"):
            package = by_name[file.name.split("_", 1)[0]]
            if sha256_file(file) != package.sha256:
                raise StageError(f"sha256 mismatch for {file.name}: the repository index says {package.sha256}")
            shutil.move(file, debs / deb_name(package))
    for package in packages:
        if sha256_file(debs / deb_name(package)) != package.sha256:
            raise StageError(f"sha256 mismatch for {deb_name(package)} (locked {package.sha256})")
    return len(wanted)


def _newest_package_date(debs: Path) -> int:
    """The newest build time among the packages: each .deb's ar members carry it."""
    newest = 0
    for deb in debs.glob("*.deb"):
        with deb.open("rb") as handle:
            header = handle.read(8 + 60)
        newest = max(newest, int(header[8 + 16 : 8 + 28].strip() or 0))
    return newest


def _lock(options: ResolveOptions, repos: list[Repository], packages: list[LockedPackage], epoch: int) -> Lock:
    """The lock records each repository's trust decision beside what came from it."""
    return Lock(
        format=LOCK_FORMAT,
        architecture=options.architecture,
        source_date_epoch=epoch,
        repositories=tuple(LockedRepository(alias=r.alias, url=r.url, suite=r.suite, components=r.components,
                                            trusted=r.trusted, local=r.url.startswith("file://")) for r in repos),
        requested=tuple(sorted(options.packages)),
        packages=tuple(packages),
    )


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: ResolveOptions = request.options
    repos = [Repository.from_option(r) for r in options.repositories]
    if not repos:
        raise StageError("no repositories configured")
    apt_root = workspace.tmp / "apt"
    env = write_apt_config(apt_root, repos, options.architecture)
    if options.offline and options.lock is None:
        raise StageError("an offline build needs a lock (build once online, or run `liveorch lock`)")
    if not options.offline:
        _update(env, repos)
    if options.lock is not None:
        packages = sorted(options.lock.packages, key=lambda p: p.name)
        log(f"using the lock: {len(packages)} packages")
    else:
        packages = _resolve_closure(options.packages, env, apt_root, repos)
        log(f"resolved {len(packages)} packages")
    debs = fresh_dir(workspace.out / DEBS)
    downloaded = fetch(packages, env, apt_root / "download", workspace.pool, debs, options.offline)
    log(f"{downloaded} downloaded, {len(packages) - downloaded} from the package pool")
    epoch = request.source_date_epoch or _newest_package_date(debs)
    lock = _lock(options, repos, packages, epoch)
    (workspace.out / LOCK).write_text(json.dumps(encode(lock), indent=1, sort_keys=True) + "\n")
    return Outcome(tools=package_version("apt"), facts={"source_date_epoch": epoch, "packages": len(packages)})
