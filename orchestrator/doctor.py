"""`liveorch doctor`: what this host and engine need for building and boot-testing, checked.

Every check returns one line, and a problem also the one line that fixes it, so a failed
CI job or a new machine says what to install or change instead of failing a build minutes
later. The checks on files (/proc/sys values, /dev/kvm, firmware, free space) take their
paths as parameters so they can be tried on prepared files; only `engine_facts` talks to
the engine. Exit status: 0 when a build can run (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from liveorch.orchestrator.boot import OVMF_CANDIDATES, OVMF_SECURE_BOOT, qemu_kvm_problem
from liveorch.orchestrator.engine import connect
from liveorch.orchestrator.errors import EngineError
from liveorch.orchestrator.images import BASE, content_tag, debian_base, image_names

# A build keeps the stage images (~2 GB), the artifact volume's cache (~3 GB for the
# example) and the results (~0.5 GB): below this, disk-full failures become likely.
LOW_DISK = 5 * 10**9
PROC_SYS = Path("/proc/sys")

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "--"


@dataclass(frozen=True)
class Check:
    """One finding: `fix` is the one line that resolves a warning or a failure."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def lines(self) -> list[str]:
        head = f"{self.status:<5} {self.name:<14} {self.detail}"
        return [head, f"{'':<5} {'':<14} fix: {self.fix}"] if self.fix and self.status in (WARN, FAIL) else [head]


@dataclass(frozen=True)
class EngineFacts:
    """What the engine says about itself (see `engine_facts`)."""

    product: str
    version: str
    api_version: str
    rootless: bool
    storage: str | None
    storage_free: int | None
    has_base_image: bool
    has_stage_images: bool


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def free_space(path: Path) -> tuple[Path, int] | None:
    """Free bytes on the filesystem of `path`, or of its nearest ancestor that exists and can
    be examined (a target dir need not exist yet; /var/lib/docker is not searchable for users)."""
    for candidate in (path, *path.parents):
        try:
            return candidate, shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _is_local(host: str | None) -> bool:
    return host is None or host.startswith(("unix://", "npipe://")) or host.startswith("/")


def engine_facts(client: docker.DockerClient, host: str | None) -> EngineFacts:
    """Ask the engine for its product, version, rootlessness and storage.

    Docker says it is rootless in info's SecurityOptions ("name=rootless"); Podman's
    Docker-compatible info does not, so Podman (named in version's Components) is asked
    through its own API (/libpod/info: host.security.rootless, the store's size and use).
    """
    version = client.version()
    components = [c.get("Name", "") for c in version.get("Components") or []]
    product = next((n for n in components if "Podman" in n), "Docker Engine")
    rootless = False
    storage: str | None = None
    storage_free: int | None = None
    if "Podman" in product:
        url = f"{client.api.base_url}/v{client.api.api_version}/libpod/info"
        response = client.api.get(url, timeout=30)
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        rootless = bool(info.get("host", {}).get("security", {}).get("rootless"))
        store = info.get("store", {})
        storage = store.get("graphRoot")
        if not _is_local(host) and store.get("graphRootAllocated") and store.get("graphRootUsed") is not None:
            # Only a remote store is judged by these: they count the filesystem's reserved
            # blocks as free, where statvfs on a local store gives what a user can write.
            storage_free = int(store["graphRootAllocated"]) - int(store["graphRootUsed"])
    else:
        info = client.info()
        rootless = any("name=rootless" in option for option in info.get("SecurityOptions") or [])
        storage = info.get("DockerRootDir")
    if storage and _is_local(host):
        measured = free_space(Path(storage))
        storage_free = measured[1] if measured else None
    has_base = _image_present(client, content_tag(BASE)) or _image_present(client, debian_base())
    has_stages = all(_image_present(client, content_tag(name)) for name in image_names())
    return EngineFacts(product=product, version=str(version.get("Version", "?")),
                       api_version=str(version.get("ApiVersion", "?")), rootless=rootless, storage=storage,
                       storage_free=storage_free, has_base_image=has_base, has_stage_images=has_stages)


def _image_present(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def check_engine(facts: EngineFacts | None, error: str | None = None) -> Check:
    if facts is None:
        return Check("engine", FAIL, error or "no container engine answers",
                     "start dockerd (sudo systemctl start docker), or point DOCKER_HOST / --engine-host at a Podman "
                     "socket (scripts/podman-setup.sh starts one)")
    mode = "rootless" if facts.rootless else "rootful"
    return Check("engine", OK, f"{facts.product} {facts.version} (API {facts.api_version}), {mode}")


def check_disk(name: str, where: str | None, free: int | None, low: int = LOW_DISK) -> Check:
    if free is None:
        return Check(name, INFO, f"free space of {where or 'the engine storage'} unknown (remote engine?)")
    if free < low:
        return Check(name, WARN, f"{_gb(free)} free in {where} (a build needs about {_gb(low)})",
                     "free some space: `liveorch cache prune`, `docker image prune`, or a larger disk")
    return Check(name, OK, f"{_gb(free)} free in {where}")


def check_target(target: Path, low: int = LOW_DISK) -> Check:
    """The target directory must be creatable and writable; its disk should have room."""
    # os.path.exists, not Path.exists: below an unreadable directory the latter raises.
    existing = next((p for p in (target, *target.parents) if os.path.exists(p)), None)
    if existing is None or not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        return Check("target dir", FAIL, f"{target} cannot be created or written by this user",
                     "choose another --target-dir, or make it writable for this user")
    measured = free_space(existing)
    return check_disk("target dir", str(target), measured[1] if measured else None, low)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def check_user_namespaces(proc_sys: Path = PROC_SYS, needed: bool = False) -> list[Check]:
    """User namespaces: rootless engines (and mmdebstrap run by a normal user) need them.

    A missing or zero setting fails only when a rootless engine is in use (`needed`);
    otherwise it is a warning for whoever switches to one.
    """
    severity = FAIL if needed else WARN
    checks = []
    max_ns = _read_int(proc_sys / "user/max_user_namespaces")
    if max_ns is not None and max_ns <= 0:
        checks.append(Check("userns", severity, "user.max_user_namespaces is 0: no user namespaces",
                            "sudo sysctl -w user.max_user_namespaces=28633"))
    clone = _read_int(proc_sys / "kernel/unprivileged_userns_clone")
    if clone is not None and clone == 0:
        checks.append(Check("userns", severity, "kernel.unprivileged_userns_clone is 0: users cannot create them",
                            "sudo sysctl -w kernel.unprivileged_userns_clone=1"))
    apparmor = _read_int(proc_sys / "kernel/apparmor_restrict_unprivileged_userns")
    if apparmor == 1:
        checks.append(Check("userns", WARN, "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 24.04): only "
                                            "programs with an AppArmor profile allowing it (Ubuntu's podman) may "
                                            "create them, not mmdebstrap run by a user or other rootless engines",
                            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"))
    if not checks:
        detail = f"available (max {max_ns})" if max_ns is not None else "no /proc/sys values to check"
        checks.append(Check("userns", OK, detail))
    return checks


def check_kvm(device: Path = Path("/dev/kvm"), qemu_problem: Callable[[], str | None] = qemu_kvm_problem) -> Check:
    """Boot tests emulate the CPU unless KVM works. `test --kvm` refuses a KVM that does not, so
    this check makes the same two tries: open the device, then start a stopped KVM guest."""
    if not device.exists():
        return Check("kvm", WARN, f"no {device}: boot tests emulate the CPU (several times slower)",
                     "enable virtualization (nested VMs: expose VT-x/AMD-V), then `sudo modprobe kvm_intel` or "
                     "`kvm_amd`")
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as error:
        return Check("kvm", WARN, f"{device} does not open ({error.strerror}): boot tests emulate the CPU",
                     f"sudo usermod -aG kvm {_user()} (then log in again), or sudo chmod 0666 {device}")
    problem = qemu_problem()
    if problem is not None:
        return Check("kvm", WARN, f"{device} opens but {problem}: boot tests emulate the CPU (leave out --kvm)",
                     "on a VM, the hypervisor must offer nested virtualization that QEMU can use")
    return Check("kvm", OK, f"{device} works: `liveorch test --kvm` and `liveorch boot --kvm` use it")


def _user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "$USER"


def check_tool(label: str, program: str, purpose: str, fix: str,
               which: Callable[[str], str | None] = shutil.which) -> Check:
    found = which(program)
    if found is None:
        return Check(label, WARN, f"no {program} ({purpose})", fix)
    return Check(label, OK, found)


def check_ovmf(candidates: Iterable[str] = OVMF_CANDIDATES) -> Check:
    found = next((c for c in candidates if Path(c).is_file()), None)
    if found is None:
        return Check("ovmf", WARN, "no OVMF firmware (UEFI boot tests)", "sudo apt-get install ovmf")
    return Check("ovmf", OK, found)


def check_ovmf_secure_boot(files: Iterable[Path] = OVMF_SECURE_BOOT) -> Check:
    """The Secure Boot build with Microsoft's keys, for `test --secure-boot` and its boot test."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return Check("secure boot", WARN, f"no {', '.join(missing)} (Secure Boot boot tests)",
                     "sudo apt-get install ovmf")
    return Check("secure boot", OK, "OVMF's Secure Boot build, Microsoft's keys enrolled")


def check_mmdebstrap(facts: EngineFacts | None, which: Callable[[str], str | None] = shutil.which) -> Check:
    """mmdebstrap makes the base image when it is missing and no registry answers."""
    if facts is not None and (facts.has_stage_images or facts.has_base_image):
        have = "the stage images" if facts.has_stage_images else "the base image"
        return Check("mmdebstrap", OK, f"not needed: the engine has {have}")
    if which("mmdebstrap"):
        return Check("mmdebstrap", OK, f"can make liveorch's base image if {debian_base()} cannot be pulled")
    return Check("mmdebstrap", WARN, f"not installed: {debian_base()} is missing and must then be pullable",
                 "sudo apt-get install mmdebstrap")


def run_checks(engine_host: str | None, target: Path, proc_sys: Path = PROC_SYS) -> list[Check]:
    """Every check, engine first; the engine's answer decides how strict the others are."""
    facts: EngineFacts | None = None
    error: str | None = None
    try:
        client = connect(engine_host)
        try:
            facts = engine_facts(client, engine_host or os.environ.get("DOCKER_HOST"))
        finally:
            client.close()
    except EngineError as failure:
        error = failure.message
    except (docker.errors.DockerException, requests.exceptions.RequestException) as failure:
        error = f"the engine answers but not as expected: {str(failure).splitlines()[0][:200]}"
    checks = [check_engine(facts, error)]
    if facts is not None:
        checks.append(check_disk("engine disk", facts.storage, facts.storage_free))
    checks.append(check_target(target))
    checks += check_user_namespaces(proc_sys, needed=bool(facts and facts.rootless))
    checks.append(check_mmdebstrap(facts))
    checks.append(check_kvm())
    checks.append(check_tool("qemu", "qemu-system-x86_64", "boot tests", "sudo apt-get install qemu-system-x86"))
    checks.append(check_ovmf())
    checks.append(check_ovmf_secure_boot())
    return checks


def exit_status(checks: Iterable[Check]) -> int:
    """0 when nothing fails (warnings allowed), 1 otherwise."""
    return 1 if any(c.status == FAIL for c in checks) else 0
