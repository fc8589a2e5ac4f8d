#!/usr/bin/env bash
# The one recipe for keeping liveorch's cache between CI runs (the Action's `cache: actions`,
# and .github/workflows/build.yml): a Docker volume cannot be cached as such, so this moves
# it into a directory that actions/cache (or any CI cache) stores, and back.
#
#   scripts/actions-cache.sh save DIR [VOLUME]   # writes DIR/images.tar and DIR/store.tar
#   scripts/actions-cache.sh load DIR [VOLUME]   # loads whatever of the two DIR holds
#
# Kept: the stage images in use (each stage's and the store keeper's content tag, which runs
# use, and :latest), so unchanged stages/ + Dockerfiles/ need no image build; and the store
# volume's content: every stage result, their origins and the package pool (.debs by sha256).
# Not kept: the resolve stage's results (and leases, transient files). Its key does not
# include the archive's state, so a carried-over resolution would pin the packages like a
# lock until the description changed; instead each run resolves anew from the pool
# (seconds), and when the archive has not moved the resolution is the same, so every later
# stage's key is the same and hits. Pin packages on purpose with a committed lock.
# Tar keeps the files' times, so `cache ls` ages and `cache prune` see through a round trip.
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
    volume_tar -C /a -cf /c/store.tar --exclude=./resolve --exclude='./origins/resolve-*' \
        --exclude=./leases --exclude=./.incoming --exclude=./.trash .
    du -sh "$dir"/*.tar
    ;;
load)
    if [ -f "$dir/images.tar" ]; then
        docker load -q -i "$dir/images.tar"
    fi
    if [ -f "$dir/store.tar" ] && docker image inspect liveorch/store:latest >/dev/null 2>&1; then
        docker volume create --label org.liveorch=store "$volume" >/dev/null
        volume_tar -C /a -xf /c/store.tar
        echo "stage results and package pool restored into volume $volume"
    fi
    ;;
*)
    echo "usage: $0 save|load DIR [VOLUME]" >&2
    exit 2
    ;;
esac
