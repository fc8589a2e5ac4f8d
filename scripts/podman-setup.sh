#!/usr/bin/env bash
# Prepares rootless Podman as liveorch's engine: an unprivileged user, its Podman API socket
# (Docker-compatible) and a liveorch that user can run. Prints the socket URL as the only
# line on stdout (progress goes to stderr), e.g.
#
#   url=$(sudo scripts/podman-setup.sh)        # unix:///run/user/1001/podman/podman.sock
#   sudo runuser -u liveorch-ci -- env HOME=/home/liveorch-ci XDG_RUNTIME_DIR=/run/user/1001 \
#       /home/liveorch-ci/liveorch-venv/bin/liveorch run examples/bookworm-live/config.xml \
#       --engine-host "$url" --target-dir /tmp/out       # (a directory the user can write)
#   sudo scripts/podman-setup.sh --stop        # stop the service this script started
#
# Run as root. Idempotent: each step runs only when what it provides is missing; a socket
# that already answers is left alone. LIVEORCH_PODMAN_USER names the user (default
# liveorch-ci). LIVEORCH_PODMAN_INSECURE_REGISTRY=HOST:PORT lets the user's Podman pull from
# a registry over plain HTTP (e.g. one on 127.0.0.1 for --images, which Docker allows on its
# own and Podman does not): it goes into ~/.config/containers/registries.conf, and a running
# service is restarted, since it reads that file only when it starts. The user gets: its Podman store in ~/.local/share/containers (stage images
# stay there between builds; `podman image prune` reclaims old ones), the service's log and
# pid in $XDG_RUNTIME_DIR (podman-service.log/.pid), and ~/liveorch-venv, an editable
# install made with the system python3 (a root-only interpreter such as pyenv's under /root
# cannot be run by the user) of this checkout, or of a copy in ~/liveorch-src when the user
# cannot read the checkout (run this script again after changing it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
user=${LIVEORCH_PODMAN_USER:-liveorch-ci}

say() { echo "podman-setup: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "run me as root (sudo $0)"; exit 1; }

runtime_of() {  # XDG_RUNTIME_DIR: /run/user/UID, or a directory under /tmp where /run is not writable
    local uid=$1
    if [ -d "/run/user/$uid" ] || mkdir -p "/run/user/$uid" 2>/dev/null; then
        echo "/run/user/$uid"
    else
        echo "/tmp/liveorch-podman-run-$uid"
    fi
}

if [ "${1:-}" = --stop ]; then
    id "$user" >/dev/null 2>&1 || exit 0
    runtime=$(runtime_of "$(id -u "$user")")
    service=$runtime/podman-service.pid
    if [ -s "$service" ] && kill -0 -- "-$(cat "$service")" 2>/dev/null; then
        # setsid made runuser the leader of a process group holding podman and the podman it
        # re-executes inside the user namespace: stop the whole group
        pgid=$(cat "$service")
        kill -TERM -- "-$pgid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
        say "stopped the podman service (process group $pgid)"
    fi
    rm -f "$service"
    # Podman's pause process, which holds the user's namespace between podman commands
    pause=$runtime/libpod/tmp/pause.pid
    if [ -s "$pause" ] && kill "$(cat "$pause")" 2>/dev/null; then
        say "stopped Podman's pause process ($(cat "$pause"))"
    fi
    rm -f "$pause"
    exit 0
fi

need_pkgs=()
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
command -v newuidmap >/dev/null 2>&1 || need_pkgs+=(uidmap)
command -v slirp4netns >/dev/null 2>&1 || need_pkgs+=(slirp4netns)
command -v fuse-overlayfs >/dev/null 2>&1 || need_pkgs+=(fuse-overlayfs)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! id "$user" >/dev/null 2>&1; then
    say "creating user $user"
    useradd --create-home --shell /bin/bash "$user"
fi
uid=$(id -u "$user")
home=$(getent passwd "$user" | cut -d: -f6)
# useradd gives new users subordinate ids (login.defs SUB_UID_*); rootless Podman needs them.
for file in /etc/subuid /etc/subgid; do
    grep -q "^$user:" "$file" 2>/dev/null || {
        say "$user has no range in $file: usermod --add-subuids 200000-265535 --add-subgids 200000-265535 $user"
        exit 1
    }
done
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
    say "warning: kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 24.04): a Podman without Ubuntu's" \
        "AppArmor profile, and mmdebstrap run by $user, cannot create user namespaces;" \
        "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 lifts that"
fi
# slirp4netns (the networked resolve stage) opens /dev/net/tun as the user: udev makes it
# 0666 on a normal system, some VMs and minimal images leave it 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    say "making /dev/net/tun usable by unprivileged users (mode 0666, as udev sets it)"
    chmod 0666 /dev/net/tun
fi

runtime=$(runtime_of "$uid")
mkdir -p "$runtime"
chown "$user:" "$runtime"
chmod 700 "$runtime"
as_user() { (cd / && runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime" "$@"); }

# Podman picks vfs (a full copy per layer: slow, several GB for six images) when nothing is
# configured and /dev/fuse is not usable; the kernel's own overlay works in a user namespace
# since Linux 5.13. Only a store that does not exist yet can get a driver.
store=$home/.local/share/containers/storage
conf=$home/.config/containers/storage.conf
if [ ! -e "$conf" ] && [ ! -d "$store" ]; then
    as_user mkdir -p "$(dirname "$conf")"
    as_user sh -c "printf '[storage]\ndriver = \"overlay\"\n' > '$conf'"
    if ! as_user podman info >/dev/null 2>&1; then
        say "native overlay does not work here; Podman will choose its own storage driver"
        rm -f "$conf"
        as_user podman system reset --force >/dev/null 2>&1 || true
    fi
fi

socket=$runtime/podman/podman.sock
url=unix://$socket
answers() { as_user podman --url "$url" version >/dev/null 2>&1; }
registries=$home/.config/containers/registries.conf
if [ -n "${LIVEORCH_PODMAN_INSECURE_REGISTRY:-}" ]; then
    wanted=$(printf '[[registry]]\nlocation = "%s"\ninsecure = true' "$LIVEORCH_PODMAN_INSECURE_REGISTRY")
    if [ "$(cat "$registries" 2>/dev/null)" != "$wanted" ]; then
        say "allowing $user's Podman to pull from $LIVEORCH_PODMAN_INSECURE_REGISTRY over plain HTTP"
        as_user mkdir -p "$(dirname "$registries")"
        printf '%s\n' "$wanted" | as_user sh -c "cat > '$registries'"
        if answers; then
            "$0" --stop
        fi
    fi
fi
if ! answers; then
    say "starting podman system service for $user"
    as_user mkdir -p "$runtime/podman"
    rm -f "$socket"
    # exec: $! is then runuser itself, which hands SIGTERM on to podman (see --stop)
    (cd / && exec setsid runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime" \
        podman system service --time=0 "$url") </dev/null >"$runtime/podman-service.log" 2>&1 &
    echo $! >"$runtime/podman-service.pid"
    for _ in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { say "the Podman socket does not answer; see $runtime/podman-service.log"; exit 3; }
fi

# A liveorch the user can run, on this checkout's sources (the stage images are built from
# them, so both engines must see the same files).
src=$repo
if ! runuser -u "$user" -- test -r "$repo/pyproject.toml" -a -x "$repo/stages"; then
    src=$home/liveorch-src
    say "$user cannot read $repo: copying it to $src"
    rm -rf "$src.new"
    mkdir -p "$src.new"
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=.pytest_cache --exclude=.ruff_cache --exclude=./out --exclude=./build -cf - . \
        | tar -C "$src.new" -xf -
    chmod -R a+rX "$src.new"
    rm -rf "$src"
    mv "$src.new" "$src"
fi
venv=$home/liveorch-venv
installed=$([ -x "$venv/bin/python" ] && (cd / && "$venv/bin/python" -c \
    'import liveorch, pathlib; print(pathlib.Path(liveorch.__file__).parents[1])' 2>/dev/null) || true)
if [ "$installed" != "$src" ] || [ "$src/pyproject.toml" -nt "$venv/.installed" ]; then
    say "installing liveorch for $user into $venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$src" >"$venv.log" 2>&1 \
        || { cat "$venv.log" >&2; exit 1; }
    touch "$venv/.installed"
    chown -R "$user:" "$venv"
fi
as_user "$venv/bin/liveorch" --version >/dev/null || { say "$venv/bin/liveorch does not run as $user"; exit 1; }

echo "$url"
