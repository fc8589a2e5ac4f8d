"""The `liveorch` command line."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from liveorch import __version__
from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import DEFAULT_VOLUME, connect
from liveorch.orchestrator.errors import DescriptionError, LiveorchError
from liveorch.orchestrator.images import ensure_stage_images, image_tag
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.payload import make_payload
from liveorch.orchestrator.plan import make_plan
from liveorch.orchestrator.progress import PlainProgress, make_progress
from liveorch.orchestrator.pxe import DEFAULT_PXE_URL
from liveorch.stages.contract import STAGES

app = typer.Typer(
    name="liveorch",
    help="Build hybrid live ISOs (BIOS+UEFI, CD+USB) from KIWI descriptions in unprivileged container stages.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="The six stage images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
cache_app = typer.Typer(help="The stage cache (the artifact volume).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_debug = False


def _say(message: str) -> None:
    if sys.stdout.isatty():
        print(message, flush=True)
    else:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        print(f"{stamp} {message}", flush=True)


def _fail(error: LiveorchError) -> None:
    print(f"liveorch: error: {error.message}", file=sys.stderr)
    if error.hint:
        for line in error.hint.splitlines()[-30:]:
            print(f"  {line}", file=sys.stderr)
    raise typer.Exit(error.exit_code)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _guarded(action: object) -> None:
    """Run a verb: LiveorchErrors become one line and an exit code; SIGTERM acts like Ctrl-C."""
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        action()  # type: ignore[operator]
    except LiveorchError as error:
        if _debug:
            raise
        _fail(error)
    except KeyboardInterrupt:
        print("liveorch: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        print(f"liveorch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    global _debug
    _debug = debug


ConfigArg = Annotated[Path, typer.Argument(help="config.xml / appliance.kiwi, or the directory holding it.")]
ProfileOpt = Annotated[list[str], typer.Option("--profile", "-p", help="Profile to select (repeatable).")]


RepoSpec = "SOURCE,TYPE,ALIAS,PRIORITY,IMAGEINCLUDE,PACKAGE_GPGCHECK,{KEYS},COMPONENTS,DISTRIBUTION,REPO_GPGCHECK"
# kiwi-ng's description changes, shared by `run` and `validate`.
SetRepoOpt = Annotated[str | None, typer.Option(help=f"Replace the first repository: {RepoSpec}.")]
AddRepoOpt = Annotated[list[str], typer.Option(help="Add a repository (same SPEC; repeatable).")]
IgnoreReposOpt = Annotated[bool, typer.Option("--ignore-repos", help="Ignore the description's repositories.")]
AddPackageOpt = Annotated[list[str], typer.Option(help="Install one more package (repeatable).")]
DeletePackageOpt = Annotated[list[str], typer.Option(help="Remove a package after config.sh (repeatable).")]
SetTypeAttrOpt = Annotated[list[str], typer.Option(help='Set an attribute of <type image="iso">, ATTR=VALUE '
                                                        "(repeatable).")]


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="config.xml / appliance.kiwi, or the directory holding it.")
                      ] = None,
    description: Annotated[Path | None, typer.Option("--description", "-d", help="The description directory "
                                                                                 "(kiwi-ng's spelling).")] = None,
    target_dir: Annotated[Path, typer.Option("--target-dir", "-t", help="Where the ISO and its files go.")] = Path(
        "out"),
    profile: ProfileOpt = [],  # noqa: B006 - typer reads the default
    set_repo: SetRepoOpt = None,
    add_repo: AddRepoOpt = [],  # noqa: B006
    ignore_repos: IgnoreReposOpt = False,
    add_package: AddPackageOpt = [],  # noqa: B006
    delete_package: DeletePackageOpt = [],  # noqa: B006
    set_type_attr: SetTypeAttrOpt = [],  # noqa: B006
    lock: Annotated[Path | None, typer.Option(help="Lock file to install from (default: <name>.lock beside "
                                                   "the description, when present).")] = None,
    update_lock: Annotated[bool, typer.Option("--update-lock", help="Resolve packages anew.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="No network at all: install the lock's packages from "
                                                            "the package cache.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every stage, ignoring cached results.")] = False,
    source_date_epoch: Annotated[int | None, typer.Option(help="Timestamp for every file in the image "
                                                                "(default: the lock's, else the newest package's).")
                                 ] = None,
    hook_timeout: Annotated[int, typer.Option(help="Seconds config.sh and images.sh may run.")] = 1800,
    keep_work: Annotated[bool, typer.Option("--keep-work", help="Keep a failed stage's work directory and output "
                                                                "in the artifact volume for inspection (`liveorch "
                                                                "clean` removes it).")] = False,
    volume: Annotated[str, typer.Option(help="Artifact volume (the stage cache).")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL, e.g. unix:///run/user/1000/podman/"
                                                         "podman.sock (default: DOCKER_HOST).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Stream the stages' own output.")] = False,
    progress: Annotated[str, typer.Option(help="auto (live view on a terminal, plain lines otherwise), live, "
                                               "plain or json (one JSON event per line).")] = "auto",
    json_events: Annotated[bool, typer.Option("--json", help="Same as --progress json.")] = False,
    pxe: Annotated[bool, typer.Option("--pxe", help="Also write a network-boot bundle <name>.pxe/ beside the ISO "
                                                    "(kernel, initrd with network, squashfs, iPXE/PXELINUX/GRUB "
                                                    "configs); adds dracut-network, procps and curl to the "
                                                    "image.")] = False,
    pxe_url: Annotated[str | None, typer.Option(help="Where the bundle will be served (implies --pxe; default "
                                                     f"{DEFAULT_PXE_URL}: the host as a QEMU guest sees it, "
                                                     "where `liveorch serve-pxe` listens).")] = None,
) -> None:
    """Build the live ISO a description asks for.

    Examples:
      liveorch run examples/bookworm-live/config.xml --target-dir out
      liveorch run --description mydesc --target-dir out --profile Live --add-package vim
    """
    overrides = Overrides(set_repo=set_repo, add_repos=add_repo, ignore_repos=ignore_repos, add_packages=add_package,
                          delete_packages=delete_package, type_attrs=set_type_attr)
    options = BuildOptions(target_dir=target_dir, profiles=tuple(profile), lock=lock, update_lock=update_lock,
                           no_cache=no_cache, source_date_epoch=source_date_epoch, volume=volume,
                           engine_host=engine_host, verbose=verbose, offline=offline, overrides=overrides,
                           hook_timeout=hook_timeout, keep_work=keep_work,
                           pxe_url=pxe_url or (DEFAULT_PXE_URL if pxe else None))

    def action() -> None:
        source = config or description
        if source is None:
            raise DescriptionError("name the description: liveorch run CONFIG (or --description DIR)")
        kind = "json" if json_events else progress
        if kind not in ("auto", "live", "plain", "json"):
            raise LiveorchError(f"--progress {kind!r}: choose auto, live, plain or json")
        renderer = make_progress(kind, verbose)
        try:
            report = run_build(source, options, renderer)
        finally:
            renderer.close()
        if kind == "json":
            print(json.dumps({"event": "summary", "iso": str(report.iso), "sha256": report.sha256,
                              "bytes": report.size, "packages": report.packages, "seconds": round(report.seconds, 2),
                              "pxe": str(report.pxe) if report.pxe else None,
                              "stages": {s.stage: {"cached": s.cached, "seconds": round(s.seconds, 2)}
                                         for s in report.stages}}))
            return
        print()
        print(f"{'stage':<10} {'state':<7} {'seconds':>8}")
        for stage in report.stages:
            print(f"{stage.stage:<10} {'cached' if stage.cached else 'built':<7} {stage.seconds:>8.1f}")
        print(f"\nISO      {report.iso}")
        print(f"size     {report.size / (1 << 20):.1f} MiB")
        print(f"sha256   {report.sha256}")
        print(f"packages {report.packages}")
        print(f"time     {report.seconds:.1f} s")
        if report.pxe:
            print(f"PXE      {report.pxe}  (try it: liveorch serve-pxe {report.pxe.parent})")

    _guarded(action)


@app.command()
def validate(
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    set_repo: SetRepoOpt = None,
    add_repo: AddRepoOpt = [],  # noqa: B006
    ignore_repos: IgnoreReposOpt = False,
    add_package: AddPackageOpt = [],  # noqa: B006
    delete_package: DeletePackageOpt = [],  # noqa: B006
    set_type_attr: SetTypeAttrOpt = [],  # noqa: B006
) -> None:
    """Check a description without building (no container engine needed).

    Example: liveorch validate examples/bookworm-live/config.xml
    """
    overrides = Overrides(set_repo=set_repo, add_repos=add_repo, ignore_repos=ignore_repos, add_packages=add_package,
                          delete_packages=delete_package, type_attrs=set_type_attr)

    def action() -> None:
        description = parse_description(config, tuple(profile), overrides=overrides)
        payload = make_payload(description)
        plan = make_plan(description, payload_sha256=payload.sha256 if payload else None)
        for note in plan.notes:
            print(f"note: {note}")
        extras = [f"{len(description.hooks)} hook(s)" if description.hooks else "",
                  "root/ overlay" if description.overlay else "",
                  f"{len(description.archives)} archive(s)" if description.archives else ""]
        print(f"{description.path}: ok: {plan.iso_name} ({len(description.packages)} packages requested, "
              f"flags={description.live.flags}, firmware={description.live.firmware}"
              + "".join(f", {e}" for e in extras if e) + ")")

    _guarded(action)


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")] = False,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """Build (or check) the six stage images."""

    def action() -> None:
        client = connect(engine_host)
        for stage, image in ensure_stage_images(client, _say, force).items():
            print(f"{stage:<10} {image.tag:<28} {image.id[7:19]}")

    _guarded(action)


@images_app.command("ls")
def images_ls(engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None) -> None:
    """List the stage images with their ids and sizes."""

    def action() -> None:
        import docker.errors

        client = connect(engine_host)
        for stage in STAGES:
            try:
                image = client.images.get(image_tag(stage))
                print(f"{stage:<10} {image_tag(stage):<28} {image.id[7:19]} {image.attrs['Size'] / 1e6:8.1f} MB")
            except docker.errors.ImageNotFound:
                print(f"{stage:<10} {image_tag(stage):<28} (not built)")

    _guarded(action)


@app.command()
def boot(
    iso: Annotated[Path, typer.Argument(help="The ISO to boot.")],
    uefi: Annotated[bool, typer.Option("--uefi", help="UEFI firmware (OVMF) instead of BIOS.")] = False,
    usb: Annotated[bool, typer.Option("--usb", help="Attach the ISO as a disk (a written USB stick), not a CD.")
                   ] = False,
    secure_boot: Annotated[bool, typer.Option("--secure-boot", help="UEFI with Secure Boot enforced (OVMF's Secure "
                                                                  "Boot build, Microsoft's keys enrolled).")] = False,
    persistent: Annotated[Path | None, typer.Option(help="A raw disk image to attach as a second disk.")] = None,
    memory: Annotated[int, typer.Option(help="Guest memory in MiB.")] = 4096,
    kvm: Annotated[bool, typer.Option("--kvm", help="Use KVM (off by default: on some VMs /dev/kvm hangs "
                                                    "64-bit guests).")] = False,
) -> None:
    """Boot an ISO in QEMU with its serial console on this terminal (Ctrl-A X quits).

    Example: liveorch boot out/bookworm-live.x86_64-1.0.0.iso --uefi
    """
    from liveorch.orchestrator.boot import BootMode, boot_interactive, kvm_usable

    def action() -> None:
        use_kvm = kvm and kvm_usable()
        if kvm and not use_kvm:
            _say("/dev/kvm is not usable here: falling back to emulation (slow, about a minute to login)")
        elif not use_kvm:
            _say("emulating the CPU (no --kvm): about a minute to the login prompt")
        mode = BootMode(uefi=uefi or secure_boot, disk=usb, secure_boot=secure_boot)
        raise typer.Exit(boot_interactive(iso, mode, memory, use_kvm, persistent))

    _guarded(action)


@app.command("serve-pxe")
def serve_pxe(
    target_dir: Annotated[Path, typer.Argument(help="The target directory of `run --pxe`, or the bundle "
                                                    "directory <name>.pxe itself.")],
    address: Annotated[str, typer.Option(help="Address to listen on (a QEMU guest reaches 127.0.0.1 as "
                                              "10.0.2.2).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve a network-boot bundle over HTTP, for trying it out (Ctrl-C stops).

    Example: liveorch serve-pxe out; then in another terminal
      qemu-system-x86_64 -m 2048 -serial stdio -nic user,model=virtio-net-pci,tftp=out/NAME.pxe,bootfile=boot.ipxe
    """
    from liveorch.orchestrator.pxe import find_bundle, make_server

    def action() -> None:
        bundle = find_bundle(target_dir)
        try:
            server = make_server(bundle, address, port)
        except OSError as error:
            raise LiveorchError(f"cannot listen on {address}:{port}: {error.strerror}",
                                hint="choose another --port or --address") from None
        _say(f"serving {bundle} on http://{address}:{port}/ (Ctrl-C stops)")
        with server:
            server.serve_forever()

    _guarded(action)


@app.command("test")
def test_iso(
    iso: Annotated[Path, typer.Argument(help="The ISO to boot.")],
    password: Annotated[str, typer.Option(help="Root password to log in with.")] = "linux",
    uefi: Annotated[bool, typer.Option("--uefi", help="Boot with UEFI firmware (OVMF) instead of BIOS.")] = False,
    usb: Annotated[bool, typer.Option("--usb", help="Attach the ISO as a disk (a written USB stick), not a CD.")
                   ] = False,
    secure_boot: Annotated[bool, typer.Option("--secure-boot", help="UEFI with Secure Boot enforced (OVMF's Secure "
                                                                  "Boot build, Microsoft's keys enrolled).")] = False,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for the login prompt.")] = 600,
) -> None:
    """Boot an ISO headless in QEMU, log in on the serial console, run a command; exit 0 on success.

    Example: liveorch test out/bookworm-live.x86_64-1.0.0.iso --uefi --usb
    """
    from liveorch.orchestrator.boot import BootMode, boot_and_login

    def action() -> None:
        mode = BootMode(uefi=uefi or secure_boot, disk=usb, secure_boot=secure_boot)
        _say(f"booting {iso} ({mode.name}, emulated: no KVM)")
        result = boot_and_login(iso, mode, password, timeout=timeout)
        print(result.command_output.strip())
        print(f"{mode.name}: login prompt after {result.seconds_to_login:.0f} s, logged in as root")

    _guarded(action)


@app.command()
def lock(
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the lock (default: "
                                                                       "<name>.lock beside the description).")
                      ] = None,
    volume: Annotated[str, typer.Option(help="Artifact volume (holds the package cache).")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """Resolve the packages and write the lock file, without building.

    Example: liveorch lock examples/bookworm-live/config.xml
    """
    import tempfile

    from liveorch.orchestrator.build import Build
    from liveorch.orchestrator.lock import lock_path

    def action() -> None:
        with tempfile.TemporaryDirectory(prefix="liveorch-lock-") as tmp:
            options = BuildOptions(target_dir=Path(tmp), profiles=tuple(profile), update_lock=True, volume=volume,
                                   engine_host=engine_host)
            with Build(config, options, _say) as build:
                target = output or lock_path(build.description, None)
                reports = build.run_stages(until="resolve")
                build.export_lock(reports, target)
        print(f"lock written: {target} ({reports['resolve'].result.facts['packages']} packages)")

    _guarded(action)


@app.command("verify-repro")
def verify_repro(
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    target_dir: Annotated[Path, typer.Option("--target-dir", "-t", help="Where the first build's log goes.")] = Path(
        "out"),
    volume: Annotated[str, typer.Option(help="Artifact volume of the first build.")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """Build twice independently (second: fresh volume, no cache) and compare every stage's outputs.

    Exits 0 when the ISOs are bit-identical, 1 naming the first stage that differs.
    Example: liveorch verify-repro examples/bookworm-live/config.xml
    """
    from liveorch.orchestrator.repro import verify_reproducible

    def action() -> None:
        options = BuildOptions(target_dir=target_dir, profiles=tuple(profile), volume=volume,
                               engine_host=engine_host)
        report = verify_reproducible(config, options, PlainProgress())
        print(f"first  {report.sha256[0]}\nsecond {report.sha256[1]}")
        if report.identical:
            print("reproducible: every stage's outputs are identical")
            return
        print(f"NOT reproducible: the {report.first_difference} stage differs in {', '.join(report.differing_files)}")
        raise typer.Exit(1)

    _guarded(action)


@cache_app.command("ls")
def cache_ls(
    volume: Annotated[str, typer.Option(help="Artifact volume.")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """List cached stage results (and the package pool) with size and age."""
    import time

    from liveorch.orchestrator.cache import list_entries

    def action() -> None:
        entries = list_entries(connect(engine_host), volume)
        now = time.time()
        total = 0
        for e in entries:
            total += e.bytes
            state = {"result": "", "store": "", "work": " (unfinished)", "kept": " (kept work)"}[e.kind]
            print(f"{e.stage:<9} {e.key[:24]:<24} {e.bytes / 1e6:10.1f} MB {(now - e.mtime) / 3600:8.1f} h{state}")
        print(f"{len(entries)} entries, {total / 1e6:.1f} MB in volume {volume}")

    _guarded(action)


@cache_app.command("prune")
def cache_prune(
    older_than_days: Annotated[float, typer.Option(help="Remove entries older than this many days.")] = 14,
    all_entries: Annotated[bool, typer.Option("--all", help="Remove every entry, the package pool too.")] = False,
    volume: Annotated[str, typer.Option(help="Artifact volume.")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """Remove old cache entries and leftovers of interrupted stages."""
    import time

    from liveorch.orchestrator.cache import prune

    def action() -> None:
        removed = prune(connect(engine_host), volume, None if all_entries else older_than_days * 86400, time.time())
        print(f"removed {len(removed)} entries, {sum(e.bytes for e in removed) / 1e6:.1f} MB")

    _guarded(action)


@app.command()
def clean(
    all_cache: Annotated[bool, typer.Option("--all", help="Also remove the artifact volume (the whole cache).")
                         ] = False,
    volume: Annotated[str, typer.Option(help="Artifact volume.")] = DEFAULT_VOLUME,
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL.")] = None,
) -> None:
    """Remove what ended builds left on the volume: stopped liveorch containers, work directories
    of interrupted builds and work kept with `run --keep-work` (running builds are left alone);
    with --all the artifact volume too."""
    import docker.errors

    from liveorch.orchestrator.cache import live_builds, remove_leftovers, remove_stopped_containers

    def action() -> None:
        client = connect(engine_host)
        live = live_builds(client, volume)
        containers = remove_stopped_containers(client, volume, live)
        print(f"removed {len(containers)} stopped containers")
        if all_cache:
            try:
                client.volumes.get(volume).remove(force=True)
                print(f"removed volume {volume}")
            except docker.errors.NotFound:
                print(f"no volume {volume}")
            return
        try:
            client.volumes.get(volume)
        except docker.errors.NotFound:
            return
        removed = remove_leftovers(client, volume, live)
        kept = sum(e.kind == "kept" for e in removed)
        print(f"removed {len(removed) - kept} unfinished work directories and {kept} kept ones")

    _guarded(action)


@app.command()
def doctor(
    engine_host: Annotated[str | None, typer.Option(help="Engine API URL (default: DOCKER_HOST).")] = None,
    target_dir: Annotated[Path, typer.Option("--target-dir", "-t", help="The target directory to check.")] = Path(
        "out"),
) -> None:
    """Check the engine, disk space, user namespaces, KVM, QEMU, OVMF and mmdebstrap; one fix line per problem.

    Exits 0 when a build can run (warnings allowed), 1 otherwise.
    Example: liveorch doctor --engine-host unix:///run/user/1000/podman/podman.sock
    """
    from liveorch.orchestrator.doctor import exit_status, run_checks

    def action() -> None:
        checks = run_checks(engine_host, target_dir)
        for check in checks:
            for line in check.lines():
                print(line)
        raise typer.Exit(exit_status(checks))

    _guarded(action)
