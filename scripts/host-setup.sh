#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host for liveorch: a container engine that answers, the tools the
# boot tests and the base-image fallback need, and a virtualenv with liveorch installed.
# Idempotent: each step runs only when what it provides is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v dockerd >/dev/null 2>&1 || docker info >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
[ -e /usr/share/ovmf/OVMF.fd ] || need_pkgs+=(ovmf)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "host-setup: installing ${need_pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    if [ -z "${DOCKER_HOST:-}" ] && command -v dockerd >/dev/null 2>&1; then
        echo "host-setup: starting dockerd"
        as_root sh -c 'setsid nohup dockerd >/var/log/liveorch-dockerd.log 2>&1 & '
        for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    fi
    docker info >/dev/null 2>&1 || { echo "host-setup: no Docker engine answers" >&2; exit 3; }
fi

if [ ! -x .venv/bin/liveorch ] || [ pyproject.toml -nt .venv/.installed ]; then
    echo "host-setup: installing liveorch into .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    touch .venv/.installed
fi
