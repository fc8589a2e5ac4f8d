#!/bin/sh
# liveorch-verity: the live root image opened read-only through dm-verity.
#
#   liveorch-verity open DIR   the medium is mounted at DIR: open its root image, print the device
#   liveorch-verity settled    dmsquash-live's case: find the medium by its label, mount it at
#                              /run/initramfs/live and open the device it boots from
#
# /etc/liveorch/verity.conf (the iso stage's second initramfs) holds the root hash, the salt,
# the image and hash tree paths on the medium, and how many blocks the tree covers; blocks
# past that count are mapped unchecked. With rd.liveorch.verity.check the whole device is
# read before it is used, and a damaged block stops the boot. Without it, dm-verity checks
# each block as it is read: a damaged one fails that read with an I/O error and the kernel
# logs "device-mapper: verity: ... data block N is corrupted".

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
CONF=/etc/liveorch/verity.conf
MEDIUM=/run/initramfs/live

say() {
    echo "liveorch-verity: $*" >&2
    echo "<3>liveorch-verity: $*" > /dev/kmsg 2> /dev/null
}

VERITY_DEVICE=live-verity # the conf names it too
DEVICE=/dev/mapper/$VERITY_DEVICE

load_conf() {
    [ -f "$CONF" ] || {
        say "no $CONF: the ISO's verity initramfs was not loaded (boot it from its own menu)"
        return 1
    }
    . "$CONF"
    DEVICE=/dev/mapper/$VERITY_DEVICE
}

table() {
    _sectors=$((VERITY_DATA_BLOCKS * VERITY_BLOCK / 512))
    echo "0 $_sectors verity 1 $1 $2 $VERITY_BLOCK $VERITY_BLOCK $VERITY_DATA_BLOCKS 0" \
        "$VERITY_ALGORITHM $VERITY_ROOT_HASH $VERITY_SALT"
    if [ "$VERITY_IMAGE_BLOCKS" -gt "$VERITY_DATA_BLOCKS" ]; then
        echo "$_sectors $(((VERITY_IMAGE_BLOCKS - VERITY_DATA_BLOCKS) * VERITY_BLOCK / 512)) linear $1 $_sectors"
    fi
}

full_check() {
    say "reading the whole root image through dm-verity ($VERITY_DATA_BLOCKS blocks checked) ..."
    if dd if="$DEVICE" of=/dev/null bs=1M 2> /dev/null; then
        say "verity check PASS: $VERITY_IMAGE matches its root hash"
        return 0
    fi
    say "verity check FAILED: $VERITY_IMAGE is corrupt (a block does not match the root hash); not booting it"
    return 1
}

open_device() {
    load_conf || return 1
    if [ ! -e "$DEVICE" ]; then
        [ -f "$1/$VERITY_IMAGE" ] && [ -f "$1/$VERITY_TREE" ] || {
            say "the medium has no $VERITY_IMAGE or $VERITY_TREE"
            return 1
        }
        modprobe -q dm-verity
        _data=$(losetup --find --show --read-only "$1/$VERITY_IMAGE") || return 1
        _tree=$(losetup --find --show --read-only "$1/$VERITY_TREE") || return 1
        table "$_data" "$_tree" | dmsetup create "$VERITY_DEVICE" --readonly || {
            say "dmsetup cannot create the verity device over $VERITY_IMAGE"
            return 1
        }
        udevadm settle --timeout=10 > /dev/null 2>&1
        say "$VERITY_IMAGE opened through dm-verity as $DEVICE (root hash $VERITY_ROOT_HASH)"
        if getargbool 0 rd.liveorch.verity.check; then
            full_check || return 1
        fi
    fi
    echo "$DEVICE"
}

settled() {
    # Only dmsquash-live's verity root is this hook's business (liveorch's live module
    # calls `open` itself): any other root boots as if the module were not there.
    [ "$(getarg root=)" = "live:$DEVICE" ] || return 0
    [ -e "$DEVICE" ] && return 0
    load_conf || return 1
    _label=$(echo "$VERITY_MEDIUM_LABEL" | sed 's,/,\\x2f,g;s, ,\\x20,g')
    [ -b "/dev/disk/by-label/$_label" ] || return 0 # not yet: the initqueue calls again
    mkdir -p "$MEDIUM"
    mountpoint -q "$MEDIUM" 2> /dev/null || mount -o ro "/dev/disk/by-label/$_label" "$MEDIUM" || {
        say "cannot mount the live medium /dev/disk/by-label/$_label"
        return 1
    }
    open_device "$MEDIUM" > /dev/null
}

case "$1" in
    open) open_device "$2" ;;
    settled) settled ;;
    *)
        echo "usage: liveorch-verity open DIR | settled" >&2
        exit 2
        ;;
esac
