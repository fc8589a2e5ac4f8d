"""The `liveorch` command line."""

from __future__ import annotations

import enum
import errno
import inspect
import signal
import sys
import threading
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from liveorch import __version__
from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.cli_help import HumanTyper
from liveorch.orchestrator.containers import StageLimits, parse_size
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import ENGINE_FAILURES, as_engine_error, connect
from liveorch.orchestrator.errors import DescriptionError, LiveorchError, TargetError, UsageError
from liveorch.orchestrator.images import describe_images, ensure_images
from liveorch.orchestrator.init_description import Suite
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.payload import make_payload
from liveorch.orchestrator.plan import make_plan
from liveorch.orchestrator.progress import PlainProgress, make_progress
from liveorch.orchestrator.pxe import DEFAULT_PXE_URL, NetworkImage
from liveorch.orchestrator.store import DEFAULT_STORE
from liveorch.orchestrator.summary import lock_use_hint, print_comparison, print_json_summary, print_summary
from liveorch.orchestrator.target_files import open_new_log
from liveorch.orchestrator.validation import plan_notes, refuse_for_strict, validate_description

app = HumanTyper(
    name="liveorch",
    help="Build hybrid live ISOs (BIOS+UEFI, CD+USB) from KIWI descriptions in unprivileged container stages.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
images_app = HumanTyper(help="The stage images and the store keeper's image.", no_args_is_help=True)
app.add_typer(images_app, name="images")
cache_app = HumanTyper(help="The stage cache (the artifact volume).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_debug = False


_SAY_LOCK = threading.Lock()


def _say(message: str) -> None:
    """One whole line per message, even from the threads that build images or run stages side by side."""
    line = message if sys.stdout.isatty() else f"{datetime.now(UTC).strftime('%H:%M:%S')} {message}"
    with _SAY_LOCK:
        print(line, flush=True)


def _fail(error: LiveorchError) -> None:
    print(f"liveorch: error: {error.message}", file=sys.stderr)
    if error.hint:
        for line in error.hint.splitlines()[-30:]:
            print(f"  {line}", file=sys.stderr)
    raise typer.Exit(error.exit_code)


def _signal_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _as_liveorch_error(error: Exception) -> LiveorchError:
    """Whatever escaped a verb, as the one line (and exit code) a user gets."""
    if isinstance(error, LiveorchError):
        return error
    if isinstance(error, ENGINE_FAILURES):
        return as_engine_error(error)
    if isinstance(error, OSError):
        where = f": {str(error.filename)[:120]}" if error.filename else ""
        if error.errno == errno.ENAMETOOLONG:
            return UsageError(f"a name is too long{where}")
        return LiveorchError(f"{error.strerror or error}{where}")
    return LiveorchError(f"unexpected error: {type(error).__name__}: {error}",
                         hint="run with --debug for the traceback, and please report it")


def _guarded(action: object) -> None:
    """Run a verb: errors become one line and an exit code; SIGTERM and SIGHUP act like Ctrl-C."""
    signal.signal(signal.SIGTERM, _signal_as_interrupt)
    signal.signal(signal.SIGHUP, _signal_as_interrupt)
    try:
        action()  # type: ignore[operator]
    except KeyboardInterrupt:
        print("liveorch: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as error:
        if _debug:
            raise
        _fail(_as_liveorch_error(error))


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


ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="config.xml / appliance.kiwi, or the directory "
                                                                  "holding it.")]
ProfileOpt = Annotated[list[str], typer.Option("--profile", "-p", metavar="PROFILE",
                                               help="Profile to select (repeatable).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse the description on notes too (exit 2), not only on "
                                                          "errors: for CI.")]
EngineOpt = Annotated[str | None, typer.Option(metavar="URL", help="The container engine's API, like DOCKER_HOST "
                                               "(its default): unix://SOCKET, e.g. a rootless Podman's, or "
                                               "tcp://HOST:PORT.")]


# The SPEC in full, as the epilog of the verbs that take one: an option's help column is too
# narrow for it, and rich cuts a word that does not fit ("SOURCE,TYPE,ALIAS,PRIORITY,IMAGEI…").
# Every line fits in 80 columns.
REPO_SPEC_HELP = """A repository SPEC (--set-repo, --add-repo) is kiwi-ng's: ten fields
separated by commas, in this order; an empty field keeps its default:

  source,type,alias,priority,imageinclude,package_gpgcheck,
  {signing_keys},components,distribution,repo_gpgcheck

For example, Debian's archive (bookworm, main), for --set-repo:

  http://deb.debian.org/debian,apt-deb,debian,,true,,,main,bookworm,true"""
# kiwi-ng's description changes, shared by `run` and `validate`.
SetRepoOpt = Annotated[str | None, typer.Option(metavar="SPEC", help="Replace the description's first repository "
                                                "(SPEC: see below).")]
AddRepoOpt = Annotated[list[str], typer.Option(metavar="SPEC", help="Add a repository (SPEC: see below; "
                                               "repeatable).")]
IgnoreReposOpt = Annotated[bool, typer.Option("--ignore-repos", help="Ignore the description's repositories.")]
AddPackageOpt = Annotated[list[str], typer.Option(metavar="NAME", help="Install one more package (repeatable).")]
DeletePackageOpt = Annotated[list[str], typer.Option(metavar="NAME", help="Remove a package after config.sh "
                                                     "(repeatable).")]
SetTypeAttrOpt = Annotated[list[str], typer.Option(metavar="ATTR=VALUE", help='Set an attribute of <type '
                                                   'image="iso"> (repeatable).')]
FastOpt = Annotated[bool, typer.Option("--fast", help="Development preset: lz4 for the root image (squashfs, "
                                                    "or erofs); a bigger ISO made faster.")]
# name -> (type, default) of each description change, in kiwi-ng's order (--fast is ours).
DESCRIPTION_CHANGES: dict[str, tuple[Any, Any]] = {
    "set_repo": (SetRepoOpt, None), "add_repo": (AddRepoOpt, []), "ignore_repos": (IgnoreReposOpt, False),
    "add_package": (AddPackageOpt, []), "delete_package": (DeletePackageOpt, []),
    "set_type_attr": (SetTypeAttrOpt, []), "fast": (FastOpt, False),
}


def with_description_changes(verb: Callable[..., None]) -> Callable[..., None]:
    """kiwi-ng's description changes (--set-repo ... --set-type-attr), declared once for the
    verbs that read a description; the verb gets them as one `changes: Overrides`."""
    hints = typing.get_type_hints(verb, include_extras=True)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(verb).parameters.values()
           if p.name != "changes"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
             for name, (kind, default) in DESCRIPTION_CHANGES.items()]

    def verb_with_changes(**values: Any) -> None:
        changes = Overrides(set_repo=values.pop("set_repo"), add_repos=values.pop("add_repo"),
                            ignore_repos=values.pop("ignore_repos"), add_packages=values.pop("add_package"),
                            delete_packages=values.pop("delete_package"), type_attrs=values.pop("set_type_attr"),
                            fast=values.pop("fast"))
        verb(changes=changes, **values)

    verb_with_changes.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
    verb_with_changes.__name__, verb_with_changes.__doc__ = verb.__name__, verb.__doc__
    return verb_with_changes


# `run`'s own options (the description changes above are shared with `validate`).
DescriptionOpt = Annotated[Path | None, typer.Option("--description", "-d", metavar="DIR",
                                                     help="The description directory (kiwi-ng's spelling).")]
TargetOpt = Annotated[Path, typer.Option("--target-dir", "-t", metavar="DIR", help="Where the ISO and its files go.")]
LockOpt = Annotated[Path | None, typer.Option(metavar="FILE", help="Lock file to install from (default: <name>.lock "
                                              "beside the description, when present).")]
UpdateLockOpt = Annotated[bool, typer.Option("--update-lock", help="Resolve packages anew.")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="No network at all: install the lock's packages from "
                                                           "the package cache.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Run every stage, ignoring cached results.")]
EpochOpt = Annotated[int | None, typer.Option(metavar="N", help="Timestamp of every file in the image, in seconds "
                                              "since 1970 (default: the lock's, else the newest package's).")]
HookTimeoutOpt = Annotated[int, typer.Option(metavar="SECONDS", help="Seconds config.sh and images.sh may run.")]
KeepWorkOpt = Annotated[bool, typer.Option("--keep-work", help="Keep a failed stage's scratch volume (request, "
                                                              "partial outputs, its output as stage.log) for "
                                                              "inspection (`liveorch clean` removes it).")]
MemoryOpt = Annotated[str, typer.Option(metavar="SIZE", help="Memory limit of every stage container, e.g. 4g or "
                                        "1536m.")]
PidsOpt = Annotated[int, typer.Option(metavar="N", help="Process limit of every stage container.")]
StageTimeoutOpt = Annotated[int, typer.Option(metavar="SECONDS", help="Seconds a stage container may run before it is "
                                              "stopped.")]
VolumeOpt = Annotated[str, typer.Option(metavar="NAME", help="The store volume (the stage cache).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Stream the stages' own output.")]


class ProgressKind(enum.StrEnum):
    """--progress's choices: a click choice, so a wrong one is a usage error (exit 2) before anything runs."""

    AUTO = "auto"
    LIVE = "live"
    PLAIN = "plain"
    JSON = "json"


ProgressOpt = Annotated[ProgressKind, typer.Option(metavar="KIND", help="auto (live view on a terminal, plain lines "
                                                   "otherwise), live, plain or json (one JSON event per line).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --progress json.")]
PxeOpt = Annotated[bool, typer.Option("--pxe", help="Also write a network-boot bundle <name>.pxe/ beside the ISO "
                                                    "(kernel, initrd with network, the image with its .sha256, "
                                                    "iPXE/PXELINUX/GRUB configs, GRUB for UEFI clients as "
                                                    "bootx64.efi); adds dracut-network, procps and curl to the "
                                                    "image.")]
PxeImageOpt = Annotated[NetworkImage, typer.Option(metavar="KIND", help="What the network boot fetches (implies "
                                                   "--pxe): iso (the ISO itself, as KIWI does; checked in the "
                                                   "initrd; any root layout) or squashfs (smaller; the squashfs "
                                                   "layout only).")]
PxeAppendOpt = Annotated[str, typer.Option(metavar="PARAMS", help="More kernel parameters for the network boot "
                                           "(implies --pxe), e.g. \"rd.kiwi.live.system=/dev/sda "
                                           "rd.live.overlay.persistent\" to deploy to a local disk.")]
PxeUrlOpt = Annotated[str | None, typer.Option(metavar="URL", help=f"Where the bundle will be served (implies --pxe; "
                                               f"default {DEFAULT_PXE_URL}: the host as a QEMU guest sees it, where "
                                               "`liveorch serve-pxe` listens).")]
CacheOpt = Annotated[str | None, typer.Option(envvar="LIVEORCH_CACHE", metavar="REGISTRY/REPO",
                                              help="A shared stage cache in an OCI registry (e.g. "
                                                   "ghcr.io/OWNER/liveorch-cache): entries this host lacks are pulled "
                                                   "from it, each checked.")]
CachePushOpt = Annotated[bool, typer.Option("--cache-push", envvar="LIVEORCH_CACHE_PUSH",
                                            help="Also push what this build ran or found to --cache (for trusted "
                                                 "runners: pull requests should only pull).")]
ImagesOpt = Annotated[str | None, typer.Option(envvar="LIVEORCH_IMAGES", metavar="REGISTRY",
                                               help="Pull the stage images from this registry (REGISTRY or "
                                                    "REGISTRY/PREFIX, where `images push` put them) instead of "
                                                    "building them.")]


def _build_and_report(source: Path | None, options: BuildOptions, kind: ProgressKind, verbose: bool) -> None:
    if source is None:
        raise DescriptionError("name the description: liveorch run CONFIG (or --description DIR)")
    renderer = make_progress(kind, verbose)
    try:
        report = run_build(source, options, renderer)
    finally:
        renderer.close()
    if kind is ProgressKind.JSON:
        print_json_summary(report)
    else:
        print_summary(report)


@app.command(epilog=REPO_SPEC_HELP)
@with_description_changes
def run(
    changes: Overrides,
    config: Annotated[Path | None, typer.Argument(metavar="CONFIG", help="config.xml / appliance.kiwi, or the "
                                                  "directory holding it.")] = None,
    description: DescriptionOpt = None,
    target_dir: TargetOpt = Path("out"),
    profile: ProfileOpt = [],  # noqa: B006 - typer reads the default
    lock: LockOpt = None,
    update_lock: UpdateLockOpt = False,
    offline: OfflineOpt = False,
    no_cache: NoCacheOpt = False,
    source_date_epoch: EpochOpt = None,
    hook_timeout: HookTimeoutOpt = 1800,
    keep_work: KeepWorkOpt = False,
    memory: MemoryOpt = "4g",
    pids_limit: PidsOpt = StageLimits.pids,
    stage_timeout: StageTimeoutOpt = StageLimits.timeout,
    volume: VolumeOpt = DEFAULT_STORE,
    engine_host: EngineOpt = None,
    verbose: VerboseOpt = False,
    progress: ProgressOpt = ProgressKind.AUTO,
    json_events: JsonOpt = False,
    pxe: PxeOpt = False,
    pxe_url: PxeUrlOpt = None,
    pxe_image: PxeImageOpt = NetworkImage.ISO,
    pxe_append: PxeAppendOpt = "",
    strict: StrictOpt = False,
    cache: CacheOpt = None,
    cache_push: CachePushOpt = False,
    images: ImagesOpt = None,
) -> None:
    """Build the live ISO a description asks for.

    Examples:
      liveorch run examples/bookworm-live/config.xml --target-dir out
      liveorch run --description mydesc --target-dir out --profile Live --add-package vim
    """

    def action() -> None:
        source = config or description
        if strict and source is not None:
            refuse_for_strict(parse_description(source, tuple(profile), overrides=changes))
        options = BuildOptions(target_dir=target_dir, profiles=tuple(profile), lock=lock, update_lock=update_lock,
                               no_cache=no_cache, source_date_epoch=source_date_epoch, volume=volume,
                               engine_host=engine_host, verbose=verbose, offline=offline, overrides=changes,
                               hook_timeout=hook_timeout, keep_work=keep_work,
                               pxe_url=pxe_url or (DEFAULT_PXE_URL if _wants_pxe(pxe, pxe_image, pxe_append) else None),
                               pxe_image=pxe_image, pxe_append=pxe_append,
                               limits=StageLimits(memory=parse_size(memory), pids=pids_limit, timeout=stage_timeout),
                               cache=cache, cache_push=cache_push, images=images)
        _build_and_report(source, options, ProgressKind.JSON if json_events else progress, verbose)

    _guarded(action)


@app.command(epilog=REPO_SPEC_HELP)
@with_description_changes
def validate(
    changes: Overrides,
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    strict: StrictOpt = False,
) -> None:
    """Check a description without building (no container engine needed): one line per problem,
    FILE:LINE: error|note: ... (fix: ...). Errors exit 2; with --strict notes do too.

    Example: liveorch validate examples/bookworm-live/config.xml
    """

    def action() -> None:
        description = parse_description(config, tuple(profile), overrides=changes)
        payload = make_payload(description)
        plan = make_plan(description, payload_sha256=payload.sha256 if payload else None)
        checked = validate_description(description, strict)
        for warning in plan.warnings:
            print(f"warning: {warning}")
        for finding in checked.passing:
            print(finding.line())
        for note in plan_notes(description, plan):
            print(f"note: {note}")
        for finding in checked.failures:
            print(finding.line(strict), file=sys.stderr)
        if checked.failures:
            raise typer.Exit(DescriptionError.exit_code)
        extras = [f"{len(description.hooks)} hook(s)" if description.hooks else "",
                  "root/ overlay" if description.overlay else "",
                  f"{len(description.archives)} archive(s)" if description.archives else ""]
        print(f"live root: {plan.live_root['medium']}, {plan.live_root['overlay']}")
        print(f"{description.path}: ok: {plan.iso_name} ({len(description.packages)} packages requested, "
              f"flags={description.live.flags}, firmware={description.live.firmware}"
              + "".join(f", {e}" for e in extras if e) + ")")

    _guarded(action)


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")] = False,
    engine_host: EngineOpt = None,
) -> None:
    """Build (or check) the stage images and the store keeper's image."""

    def action() -> None:
        client = connect(engine_host)
        for name, image in ensure_images(client, _say, force).items():
            print(f"{name:<10} {image.tag:<28} {image.id[7:19]}")

    _guarded(action)


@images_app.command("push")
def images_push(
    registry: Annotated[str, typer.Argument(metavar="REGISTRY", help="REGISTRY or REGISTRY/PREFIX, e.g. ghcr.io/OWNER "
                                                                     "or 127.0.0.1:5000")],
    engine_host: EngineOpt = None,
) -> None:
    """Push the images this checkout runs as REGISTRY/liveorch-<name>:<content tag>, so other
    hosts run the very same tools (`run --images REGISTRY`)."""
    from liveorch.orchestrator.images import push_images

    def action() -> None:
        for name, image in push_images(connect(engine_host), registry, _say).items():
            print(f"{name:<10} {image.digest or image.tag}")

    _guarded(action)


@images_app.command("ls")
def images_ls(engine_host: EngineOpt = None) -> None:
    """List the images this checkout runs (by content tag) with their ids and sizes."""

    def action() -> None:
        for name, tag, short_id, size in describe_images(connect(engine_host)):
            shown = f"{short_id} {size:8.1f} MB" if short_id else "(not built)"
            print(f"{name:<10} {tag:<28} {shown}")

    _guarded(action)


@app.command()
def boot(
    iso: Annotated[Path, typer.Argument(metavar="ISO", help="The ISO to boot.")],
    uefi: Annotated[bool, typer.Option("--uefi", help="UEFI firmware (OVMF) instead of BIOS.")] = False,
    usb: Annotated[bool, typer.Option("--usb", help="Attach the ISO as a disk (a written USB stick), not a CD.")
                   ] = False,
    secure_boot: Annotated[bool, typer.Option("--secure-boot", help="UEFI with Secure Boot enforced (OVMF's Secure "
                                                                  "Boot build, Microsoft's keys enrolled).")] = False,
    persistent: Annotated[Path | None, typer.Option(metavar="FILE",
                                                    help="A raw disk image to attach as a second disk.")] = None,
    memory: Annotated[int, typer.Option(metavar="MIB", help="Guest memory in MiB.")] = 4096,
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


def _wants_pxe(pxe: bool, image: NetworkImage, append: str) -> bool:
    """--pxe-image and --pxe-append ask for the bundle as --pxe-url does."""
    return pxe or image is not NetworkImage.ISO or bool(append)


@app.command("serve-pxe")
def serve_pxe(
    target_dir: Annotated[Path, typer.Argument(metavar="DIR", help="The target directory of `run --pxe`, or the bundle "
                                                    "directory <name>.pxe itself.")],
    address: Annotated[str, typer.Option(metavar="ADDRESS",
                                         help="Address to listen on (a QEMU guest reaches 127.0.0.1 as "
                                              "10.0.2.2).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
) -> None:
    """Serve a network-boot bundle over HTTP, for trying it out (Ctrl-C stops).

    Example: liveorch serve-pxe out; then in another terminal, BIOS (iPXE)
      qemu-system-x86_64 -m 2048 -serial stdio -nic user,model=virtio-net-pci,tftp=out/NAME.pxe,bootfile=boot.ipxe
    or UEFI (GRUB, bootx64.efi)
      qemu-system-x86_64 -m 2048 -serial stdio -bios /usr/share/ovmf/OVMF.fd \\
        -nic user,model=virtio-net-pci,tftp=out/NAME.pxe,bootfile=bootx64.efi
    """
    from liveorch.orchestrator.pxe import find_bundle, make_server

    def action() -> None:
        bundle = find_bundle(target_dir)
        try:
            server = make_server(bundle, address, port)
        except OSError as error:
            raise UsageError(f"cannot listen on {address}:{port}: {error.strerror}",
                             hint="choose another --port or --address") from None
        _say(f"serving {bundle} on http://{address}:{port}/ (Ctrl-C stops)")
        with server:
            server.serve_forever()

    _guarded(action)


@app.command("test")
def test_iso(
    iso: Annotated[Path, typer.Argument(metavar="ISO", help="The ISO to boot.")],
    user: Annotated[str, typer.Option(metavar="NAME", help="User to log in as on the serial console.")] = "root",
    password: Annotated[str, typer.Option(envvar="LIVEORCH_TEST_PASSWORD", metavar="PASSWORD",
                                          help="Password of --user (or LIVEORCH_TEST_PASSWORD; never logged).")
                        ] = "linux",
    command: Annotated[list[str], typer.Option("--command", "-c", metavar="COMMAND",
                                               help="A shell command to run after login "
                                               "(repeatable, run in order, each in its own subshell); its output "
                                               "and exit code are shown and a failure fails the test. Default: "
                                               "cat /proc/cmdline; findmnt -n /")] = [],  # noqa: B006
    uefi: Annotated[bool, typer.Option("--uefi", help="Boot with UEFI firmware (OVMF) instead of BIOS.")] = False,
    usb: Annotated[bool, typer.Option("--usb", help="Attach the ISO as a disk (a written USB stick), not a CD.")
                   ] = False,
    secure_boot: Annotated[bool, typer.Option("--secure-boot", help="UEFI with Secure Boot enforced (OVMF's Secure "
                                                                  "Boot build, Microsoft's keys enrolled).")] = False,
    kvm: Annotated[bool, typer.Option("--kvm", help="Use KVM (-enable-kvm -cpu host) instead of emulating the CPU; "
                                                    "refused when KVM does not work here (see `liveorch doctor`).")
                   ] = False,
    timeout: Annotated[int, typer.Option(metavar="SECONDS", help="Seconds to wait for the login prompt.")] = 600,
    command_timeout: Annotated[int, typer.Option(metavar="SECONDS", help="Seconds each --command may take.")] = 300,
    transcript: Annotated[Path | None, typer.Option(metavar="FILE",
                                                    help="Where to store the serial console transcript (plain "
                                                         "text; default <ISO name>.<mode>.serial.log beside the "
                                                         "ISO).")] = None,
) -> None:
    """Boot an ISO headless in QEMU, log in on the serial console, run commands; exit 0 when all succeed.

    Example: liveorch test out/bookworm-live.x86_64-1.0.0.iso --uefi --usb --command 'systemctl is-system-running'
    """
    from liveorch.orchestrator.boot import DEFAULT_COMMAND, BootMode, boot_and_login
    from liveorch.orchestrator.boot_check import check_iso, check_results, report_lines, require_kvm, transcript_path
    from liveorch.orchestrator.console import check_command
    from liveorch.orchestrator.errors import CheckFailed

    def action() -> None:
        commands = [check_command(each) for each in command] or [DEFAULT_COMMAND]
        check_iso(iso)
        if kvm:
            require_kvm()
        mode = BootMode(uefi=uefi or secure_boot, disk=usb, secure_boot=secure_boot)
        log = transcript_path(iso, mode, transcript)
        _say(f"booting {iso} ({mode.name}, {'KVM' if kvm else 'emulated: no --kvm, about a minute to login'})")
        try:
            result = boot_and_login(iso, mode, password, commands, timeout=timeout, user=user, log=log, kvm=kvm,
                                    command_timeout=command_timeout)
        except CheckFailed as failure:
            stored = f"\nthe whole transcript: {log}" if log else ""
            raise CheckFailed(failure.message, hint=(failure.hint or "") + stored) from None
        print("\n".join(report_lines(result.commands)))
        print(f"{mode.name}: login prompt after {result.seconds_to_login:.0f} s, logged in as {user}")
        _say(f"transcript: {log}" if log else f"transcript not stored: {iso.parent} is not writable (--transcript)")
        check_results(result.commands)

    _guarded(action)


@app.command()
def lock(
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Where to write the lock (default: "
                                                                       "<name>.lock beside the description).")
                      ] = None,
    volume: Annotated[str, typer.Option(metavar="NAME", help="The store volume (holds the package pool).")
                      ] = DEFAULT_STORE,
    engine_host: EngineOpt = None,
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
                try:
                    reports = build.run_stages(until="resolve")
                except LiveorchError as error:
                    _keep_log(error, getattr(build, "log_path", None), target)
                    raise
                build.export_lock(reports, target)
        print(f"lock written: {target} ({reports['resolve'].record.facts['packages']} packages)")
        print(lock_use_hint(target, build.description.path))

    _guarded(action)


def _keep_log(error: LiveorchError, log: Path | None, lock: Path) -> None:
    """`lock` builds in a temporary directory that goes when it ends: a failed build's log is
    copied out first, beside the lock (else into the current directory) as `<lock>.<UTC>.log`,
    and the hint names the copy, never the file about to be deleted."""
    if log is None or not log.is_file():
        return
    lines = [line for line in (error.hint or "").splitlines() if line != f"full log: {log}"]
    for directory in dict.fromkeys([lock.parent, Path(".")]):
        try:
            kept, handle = open_new_log(directory, lock.name)
        except TargetError:
            continue
        with handle:
            handle.write(log.read_text(encoding="utf-8", errors="backslashreplace"))
        error.hint = "\n".join([*lines, f"full log: {kept}"])
        return
    error.hint = "\n".join([*lines, f"the log could not be kept: neither {lock.parent} nor the current directory "
                                     "is writable"])


@app.command("verify-repro")
def verify_repro(
    config: ConfigArg,
    profile: ProfileOpt = [],  # noqa: B006
    target_dir: Annotated[Path, typer.Option("--target-dir", "-t", metavar="DIR", help="Where the first build's log "
                                                                                    "goes.")] = Path("out"),
    volume: Annotated[str, typer.Option(metavar="NAME", help="The store volume of the first build.")] = DEFAULT_STORE,
    engine_host: EngineOpt = None,
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
        print_comparison([("first", report.sha256[0]), ("second", report.sha256[1])], report.identical,
                         "reproducible: every stage's outputs are identical", report.first_difference,
                         report.differing_files, "NOT reproducible")
        if not report.identical:
            raise typer.Exit(1)

    _guarded(action)


@app.command("rebuild")
def rebuild_verb(
    report: Annotated[Path, typer.Argument(metavar="REPORT",
                                           help="The build's <name>.report.json (its lock beside it).")],
    description: Annotated[Path | None, typer.Option("--description", "-d", metavar="PATH",
                                                     help="The build's config.xml or its "
                                                     "directory, when not where the report says.")] = None,
    lock: Annotated[Path | None, typer.Option(metavar="FILE",
                                              help="The build's lock (default: <name>.lock beside the report).")
                    ] = None,
    images: ImagesOpt = None,
    engine_host: EngineOpt = None,
) -> None:
    """Rebuild a published build from its report.json on this host, with no cache, and compare.

    Exits 0 when the ISO is bit-identical, 1 naming the first stage and files that differ.
    Example: liveorch rebuild out/bookworm-live.x86_64-1.0.0.report.json --images ghcr.io/OWNER
    """
    from liveorch.orchestrator.rebuild import rebuild

    def action() -> None:
        result = rebuild(report, description, lock, images, engine_host, PlainProgress())
        print_comparison([("recorded", result.recorded), ("rebuilt", result.rebuilt)], result.identical,
                         f"reproduced: the same ISO ({result.image_digests_checked} image digests checked)",
                         result.first_difference, result.differing_files, "NOT reproduced")
        if not result.identical:
            raise typer.Exit(1)

    _guarded(action)


@cache_app.command("ls")
def cache_ls(
    volume: Annotated[str, typer.Option(metavar="NAME", help="The store volume.")] = DEFAULT_STORE,
    engine_host: EngineOpt = None,
) -> None:
    """List cached stage results (size, last use, and the build, profiles and description each came
    from), the package pool and builds' scratch volumes."""
    from liveorch.orchestrator.cache import list_entries
    from liveorch.orchestrator.summary import print_cache_entries

    def action() -> None:
        print_cache_entries(list_entries(connect(engine_host), volume), volume)

    _guarded(action)


@cache_app.command("prune")
def cache_prune(
    older_than_days: Annotated[float, typer.Option(metavar="DAYS",
                                                   help="Remove entries unused for this many days.")] = 14,
    max_size: Annotated[str | None, typer.Option("--max-size", metavar="SIZE", help=(
        "Then remove the least recently used entries until the store fits in SIZE (like 5G or 500M; "
        "binary units)."))] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Remove every entry, the package pool too (not what "
                                                            "a running build uses).")] = False,
    volume: Annotated[str, typer.Option(metavar="NAME", help="The store volume.")] = DEFAULT_STORE,
    engine_host: EngineOpt = None,
) -> None:
    """Remove old cache entries and what ended builds left; a running build's entries stay.

    A cache hit counts as a use. Example: liveorch cache prune --max-size 5G
    """
    from liveorch.orchestrator.cache import prune
    from liveorch.orchestrator.human import count, format_size, parse_size

    def action() -> None:
        if all_entries and max_size is not None:
            raise UsageError("give --all or --max-size, not both (--all removes every entry)")
        try:
            max_bytes = None if max_size is None else parse_size(max_size)
        except ValueError as error:
            raise UsageError(f"--max-size {error}") from None
        pruned = prune(connect(engine_host), volume, None if all_entries else older_than_days * 86400, max_bytes)
        freed = format_size(sum(e.bytes for e in pruned.removed))
        print(f"removed {count(len(pruned.removed), 'entry', 'entries')} ({freed}); "
              f"{format_size(pruned.remaining)} left in {volume}")
        if max_bytes is not None and pruned.remaining > max_bytes:
            print(f"note: still above {format_size(max_bytes)}: what is left is held by running builds")

    _guarded(action)


@app.command()
def clean(
    all_cache: Annotated[bool, typer.Option("--all", help="Also remove the store volume (the whole cache).")
                         ] = False,
    volume: Annotated[str, typer.Option(metavar="NAME", help="The store volume.")] = DEFAULT_STORE,
    engine_host: EngineOpt = None,
) -> None:
    """Remove what ended builds left: stopped liveorch containers, scratch volumes of interrupted
    builds and those kept with `run --keep-work` (running builds are left alone); with --all the
    store volume too."""
    from liveorch.orchestrator.cache import live_builds, remove_leftovers, remove_stopped_containers, remove_store

    def action() -> None:
        client = connect(engine_host)
        live = live_builds(client, volume)
        containers = remove_stopped_containers(client, volume, live)
        print(f"removed {len(containers)} stopped containers")
        removed = remove_leftovers(client, volume, live)
        kept = sum(e.kind == "kept" for e in removed)
        print(f"removed {len(removed) - kept} unfinished work volumes and {kept} kept ones")
        if all_cache:
            print(f"removed volume {volume}" if remove_store(client, volume) else f"no volume {volume}")

    _guarded(action)


@app.command()
def doctor(
    engine_host: EngineOpt = None,
    target_dir: Annotated[Path, typer.Option("--target-dir", "-t", metavar="DIR",
                                             help="The target directory to check.")] = Path("out"),
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


@app.command("init")
def init_verb(
    directory: Annotated[Path, typer.Argument(metavar="DIR",
                                              help="Where to write config.xml (made when missing; it must be "
                                                   "empty unless --force).")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="The image's name, which names the ISO (default: the "
                                                  "directory's name).")] = None,
    suite: Annotated[Suite, typer.Option(metavar="|".join(Suite),
                                         help="The Debian release (CI builds and boots bookworm).")
                     ] = Suite.BOOKWORM,
    user: Annotated[str | None, typer.Option(metavar="NAME",
                                             help="Also a login NAME besides root, with the same password.")
                    ] = None,
    password: Annotated[str | None, typer.Option(envvar="LIVEORCH_INIT_PASSWORD", metavar="PASSWORD",
                                                 help="The logins' password, "
                                                 "written as a SHA-512-crypt hash (default: linux, the example's).")
                        ] = None,
    ask_password: Annotated[bool, typer.Option("--ask-password", help="Type the password unseen, twice.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite config.xml in a directory that is not empty "
                                                        "(other files stay).")] = False,
) -> None:
    """Write a commented, minimal, bootable description to start from: the bundled example with your
    name and logins, every default it relies on stated.

    Example: liveorch init my-live --user demo --ask-password
    """
    from liveorch.orchestrator.init_description import InitRequest, chosen_password, init_description, report_lines

    def action() -> None:
        request = InitRequest(directory=directory, name=name, suite=suite, user=user,
                              password=chosen_password(password, ask_password), force=force)
        print("\n".join(report_lines(init_description(request), directory)))

    _guarded(action)
