#!/usr/bin/env bash
# Moves what is worth keeping between CI runs from the Docker engine into a directory that
# actions/cache (or any CI cache) can store, and back. A volume cannot be cached directly.
#
#   scripts/actions-cache.sh save DIR [VOLUME]   # DIR/images.tar, DIR/pool.tar
#   scripts/actions-cache.sh load DIR [VOLUME]   # whatever of the two DIR holds
#
# Kept: the images in use (each stage's and the store keeper's content tag, which runs use,
# and :latest), so unchanged stages/ + Dockerfiles/ need no image build; and the store's
# package pool (.debs by sha256), so resolving downloads only what changed (a pooled file is
# checked against the repository index before use). Not kept: stage results. They are keyed
# by the stages' code and a cached resolution acts as a lock, so carrying them over would pin
# the packages until the code changes; each run resolves and builds anew.
set -euo pipefail
action=${1:?save or load}
dir=$(realpath -m "${2:?cache directory}")
volume=${3:-liveorch-artifacts}
images=(resolve rootfs squashfs initrd iso checksum store)

# tar as root inside the store keeper's image, the one that owns the store's files.
volume_tar() {
    docker run --rm --user 0 --network none --entrypoint tar -v "$volume:/a" -v "$dir:/c" \
        liveorch/store:latest "$@"
}

case $action in
save)
    mkdir -p "$dir"
    refs=()
    for image in "${images[@]}"; do
        id=$(docker image inspect --format '{{.Id}}' "liveorch/$image:latest")
        while read -r ref ref_id; do
            [ "$ref_id" = "$id" ] && refs+=("$ref")
        done < <(docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' "liveorch/$image")
    done
    docker save -o "$dir/images.tar" "${refs[@]}"
    volume_tar -C /a -cf /c/pool.tar ./pool
    du -sh "$dir"/*.tar
    ;;
load)
    if [ -f "$dir/images.tar" ]; then
        docker load -q -i "$dir/images.tar"
    fi
    if [ -f "$dir/pool.tar" ] && docker image inspect liveorch/store:latest >/dev/null 2>&1; then
        docker volume create --label org.liveorch=store "$volume" >/dev/null
        volume_tar -C /a -xf /c/pool.tar
        echo "package pool restored into volume $volume"
    fi
    ;;
*)
    echo "usage: $0 save|load DIR [VOLUME]" >&2
    exit 2
    ;;
esac
