#!/usr/bin/env bash
# README command 1: set the host up and build the bundled example ISO into ./out.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
exec .venv/bin/liveorch run examples/bookworm-live/config.xml --target-dir out "$@"
