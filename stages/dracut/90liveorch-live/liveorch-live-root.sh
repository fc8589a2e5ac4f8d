#!/bin/sh
# liveorch-live-root: finds the live medium, mounts its root image read-only at
# /run/liveorch/base (a squashfs, an EROFS LiveOS/rootfs.img, or an ext4 rootfs.img inside
# the squashfs) and prepares the overlay's upper layer at /run/liveorch/cow:
# a tmpfs, or with rd.live.overlay.persistent a partition created on first boot after the
# ISO data of a USB stick (or a cow file beside an ISO found by iso-scan). When
# persistence cannot be had, the system boots anyway and the console says why.
#
# With liveorch's verity module (verity_blocks) the root image is read through dm-verity.
#
# Over the network (root=live:http|https|ftp://...), liveorch-live-net.sh fetches the image.
#
# Kernel parameters (KIWI's names): root=live:CDLABEL=|LABEL=|UUID=|/dev/...|http(s)://..., rd.live.dir,
# rd.live.squashimg, rd.live.overlay.size, rd.live.overlay.persistent,
# rd.live.overlay.cowfs, rd.live.cowfile.mbsize, mediacheck (or rd.live.check),
# iso-scan/filename, rd.live.ram, rd.live.timeout.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin

RUN=/run/liveorch
COW_LABEL=liveorch-cow
MIN_COW_SECTORS=131072 # 64 MiB: less is not worth a partition

say() {
    echo "liveorch-live: $*"
    echo "<5>liveorch-live: $*" > /dev/kmsg 2> /dev/null
}

fail() {
    say "$*"
    exit 1
}

timeout_s=$(getarg rd.live.timeout=)
timeout_s=${timeout_s:-180}

# Runs the command every half second until it succeeds; fails after rd.live.timeout.
wait_until() {
    _i=0
    until "$@"; do
        _i=$((_i + 1))
        [ "$_i" -gt $((timeout_s * 2)) ] && return 1
        sleep 0.5
    done
    return 0
}

# A block device node (or any path) is there, once udev has caught up.
path_settled() {
    [ -e "$1" ] && return 0
    udevadm settle --timeout=2 > /dev/null 2>&1
    [ -e "$1" ]
}

wait_for_path() {
    wait_until path_settled "$1"
}

live_device() {
    _root=$(getarg root=)
    _root=${_root#live:}
    case "$_root" in
        CDLABEL=* | LABEL=*)
            _label=$(echo "${_root#*=}" | sed 's,/,\\x2f,g;s, ,\\x20,g')
            echo "/dev/disk/by-label/$_label"
            ;;
        UUID=*) echo "/dev/disk/by-uuid/${_root#UUID=}" ;;
        PARTUUID=*) echo "/dev/disk/by-partuuid/${_root#PARTUUID=}" ;;
        aoe:*) liveorch-live-aoe "${_root#aoe:}" ;; # ATA over Ethernet: finds the export first
        /dev/*) echo "$_root" ;;
        *) return 1 ;;
    esac
}

# iso-scan/filename: the ISO as a file on some other filesystem. Mounted read-write
# only when a cow file is wanted there.
iso_scan() {
    _file=$1
    _mode=$2
    mkdir -p "$RUN/isoscan"
    _i=0
    while :; do
        udevadm settle --timeout=5 > /dev/null 2>&1
        for _dev in /dev/disk/by-uuid/*; do
            [ -b "$_dev" ] || continue
            mount -o "$_mode" "$_dev" "$RUN/isoscan" 2> /dev/null || continue
            if [ -f "$RUN/isoscan/$_file" ]; then
                losetup --find --show --read-only "$RUN/isoscan/$_file"
                return 0
            fi
            umount "$RUN/isoscan"
        done
        _i=$((_i + 1))
        [ "$_i" -gt $((timeout_s / 5)) ] && return 1
        sleep 2
    done
}

media_check() {
    if ! command -v checkisomd5 > /dev/null; then
        say "media check asked for, but the image has no checkisomd5 (add isomd5sum)"
        return 0
    fi
    say "checking the medium $1 (checkisomd5) ..."
    if checkisomd5 --verbose "$1" < /dev/null > /dev/console 2>&1; then
        say "media check PASS: the medium is intact"
    else
        fail "media check failed: $1 is corrupt (checkisomd5 FAIL); not booting it"
    fi
}

copy_to_ram() {
    _size=$(stat -c %s "$1")
    mkdir -p "$RUN/ram"
    mount -t tmpfs -o "mode=0700,size=$((_size / 1048576 + 16))m" liveorch-ram "$RUN/ram" || return 1
    say "copying the live image into RAM ($((_size / 1048576)) MiB) ..."
    cp "$1" "$RUN/ram/$(basename "$1")" || return 1
    say "live image in RAM: the medium may be removed"
}

# The read-only root under the overlay, at $RUN/base: a squashfs or EROFS root image, or
# (filesystem="ext4") the filesystem image LiveOS/rootfs.img inside the squashfs.
mount_base() {
    _type=$(blkid -o value -s TYPE "$1" 2> /dev/null)
    if [ "$_type" = erofs ]; then
        modprobe -q erofs
        mount -t erofs -o ro,loop "$1" "$RUN/base"
        return
    fi
    mkdir -p "$RUN/squashfs"
    mount -t squashfs -o ro,loop "$1" "$RUN/squashfs" || return 1
    if [ -f "$RUN/squashfs/LiveOS/rootfs.img" ]; then
        _type=$(blkid -o value -s TYPE "$RUN/squashfs/LiveOS/rootfs.img" 2> /dev/null)
        modprobe -q "${_type:-ext4}"
        mount -t "${_type:-ext4}" -o ro,loop "$RUN/squashfs/LiveOS/rootfs.img" "$RUN/base"
        return
    fi
    umount "$RUN/squashfs"
    mount -t squashfs -o ro,loop "$1" "$RUN/base"
}

tmpfs_upper() {
    _size=$(getarg rd.live.overlay.size=)
    mount -t tmpfs -o "mode=0755,size=${_size:-50%}" liveorch-cow "$RUN/cow"
}

make_fs() {
    case "$cowfs" in
        xfs) mkfs.xfs -q -f -L "$COW_LABEL" "$1" ;;
        *) mkfs.ext4 -q -F -L "$COW_LABEL" "$1" ;;
    esac
}

# The whole disk holding the live medium, when it is a writable disk (a USB stick).
medium_disk() {
    _real=$(readlink -f "$1")
    _name=${_real##*/}
    if [ -e "/sys/class/block/$_name/partition" ]; then
        _name=$(basename "$(readlink -f "/sys/class/block/$_name/..")")
    fi
    echo "/dev/$_name"
}

# End of the ISO data in 512-byte sectors: the larger of the ISO 9660 volume and the
# partitions (and GPT backup table) that xorriso wrote.
iso_end() {
    _blocks=$(dd if="$1" bs=2048 skip=16 count=1 2> /dev/null | od -An -tu4 -j80 -N4 | tr -d ' ')
    _end=$((${_blocks:-0} * 4))
    _size=$(blockdev --getsz "$1")
    # The image as written: everything up to the last non-free sector sfdisk knows of.
    for _e in $(sfdisk -d "$1" 2> /dev/null | sed -n 's/.*start= *\([0-9]*\), *size= *\([0-9]*\).*/\1 \2/p' \
        | while read -r _s _n; do echo $((_s + _n)); done); do
        [ "$_e" -gt "$_end" ] && _end=$_e
    done
    # GPT backup table right after the data (xorriso puts it at the end of the image).
    echo $((_end + 64 < _size ? _end + 64 : _end))
}

persistent_partition() {
    _disk=$(medium_disk "$1")
    case "${_disk##*/}" in
        sr* | loop*)
            reason="the medium $_disk is a CD/DVD (read-only)"
            return 1
            ;;
    esac
    if [ "$(blockdev --getro "$_disk" 2> /dev/null)" = "1" ]; then
        reason="the medium $_disk is read-only"
        return 1
    fi
    for _part in $(blkid -o device -t LABEL="$COW_LABEL" 2> /dev/null); do
        case "$_part" in
            "$_disk"*)
                mount "$_part" "$RUN/cow" || {
                    reason="cannot mount the persistence partition $_part"
                    return 1
                }
                say "persistent: using $_part"
                return 0
                ;;
        esac
    done
    # A partition of ours whose formatting was cut short (power loss at first boot).
    _part=$(readlink -f "/dev/disk/by-partlabel/$COW_LABEL" 2> /dev/null)
    case "$_part" in
        "$_disk"?*)
            say "formatting the persistence partition $_part ($cowfs)"
            make_fs "$_part" > /dev/null && mount "$_part" "$RUN/cow" && return 0
            reason="cannot format the persistence partition $_part"
            return 1
            ;;
    esac
    command -v sfdisk > /dev/null && command -v partx > /dev/null || {
        reason="the image has no sfdisk/partx (add fdisk)"
        return 1
    }
    command -v "mkfs.$cowfs" > /dev/null || {
        reason="the image has no mkfs.$cowfs"
        return 1
    }
    _size=$(blockdev --getsz "$_disk")
    _start=$(($(iso_end "$_disk") + 2048))
    _start=$(((_start + 2047) / 2048 * 2048))
    if [ $((_size - _start)) -lt "$MIN_COW_SECTORS" ]; then
        reason="no free space after the ISO data on $_disk"
        return 1
    fi
    say "creating the persistence partition on $_disk at sector $_start ($(((_size - _start) / 2048)) MiB, $cowfs)"
    # GPT hybrids: move the backup table to the real end of the stick first.
    if ! sfdisk -d "$_disk" > /dev/null 2>&1; then
        # No partition table at all (a BIOS-only hybrid): a DOS table holding just ours;
        # sfdisk keeps the MBR's boot code.
        printf 'label: dos\nstart=%s, type=L\n' "$_start" \
            | sfdisk --wipe never --no-reread --no-tell-kernel -q "$_disk" > /dev/null 2>&1
    else
        _name=""
        if sfdisk -d "$_disk" 2> /dev/null | grep -q '^label: gpt'; then
            sfdisk --relocate gpt-bak-std "$_disk" > /dev/null 2>&1
            _name=", name=$COW_LABEL"
        fi
        echo "start=$_start, type=L$_name" | sfdisk --append --no-reread --no-tell-kernel -q "$_disk" > /dev/null 2>&1
    fi || {
        reason="sfdisk could not add a partition to $_disk"
        return 1
    }
    _part=$(sfdisk -d "$_disk" 2> /dev/null | sed -n "s/^\([^ ]*\) : start= *$_start,.*/\1/p")
    [ -n "$_part" ] || {
        reason="the new partition on $_disk was not found"
        return 1
    }
    partx --add --nr "${_part##*[!0-9]}" "$_disk" > /dev/null 2>&1
    wait_for_path "$_part" || {
        reason="the kernel did not show the new partition $_part"
        return 1
    }
    make_fs "$_part" > /dev/null || {
        reason="mkfs.$cowfs failed on $_part"
        return 1
    }
    mount "$_part" "$RUN/cow" || {
        reason="cannot mount the new partition $_part"
        return 1
    }
    say "persistent: created $_part ($cowfs, label $COW_LABEL)"
}

persistent_cowfile() {
    _file=$RUN/isoscan/${isofile%.*}.cow
    if [ ! -f "$_file" ]; then
        _mb=$(getarg rd.live.cowfile.mbsize=)
        _mb=${_mb:-500}
        say "creating the cow file ${isofile%.*}.cow (${_mb} MiB, $cowfs) beside the ISO"
        truncate -s "${_mb}M" "$_file" 2> /dev/null && make_fs "$_file" > /dev/null || {
            rm -f "$_file"
            reason="cannot create a cow file beside the ISO (read-only or full filesystem?)"
            return 1
        }
    fi
    mount -o loop "$_file" "$RUN/cow" || {
        reason="cannot mount the cow file $_file"
        return 1
    }
    say "persistent: using the cow file ${isofile%.*}.cow"
}

# A root image on its own (downloaded into RAM, or a device that is one): no medium around it
# to check or to keep changes on.
bare_root() {
    mount_base "$1" || fail "cannot mount the live root image $2 (not a squashfs or EROFS image?)"
    [ "$persistent" = 1 ] && say "persistence not possible: $2 is the root image alone; changes are kept in" \
        "RAM only and lost at power-off"
    tmpfs_upper || fail "cannot mount a tmpfs for the overlay"
    mkdir -p "$RUN/cow/overlay/upper" "$RUN/cow/overlay/work" || fail "cannot prepare the overlay directories"
    say "live root ready: $2 + overlay on tmpfs"
    exit 0
}

mkdir -p "$RUN/medium" "$RUN/base" "$RUN/cow"
modprobe -q loop
modprobe -q squashfs
modprobe -q overlay

persistent=0
getargbool 0 rd.live.overlay.persistent && persistent=1
cowfs=$(getarg rd.live.overlay.cowfs=)
cowfs=${cowfs:-ext4}
isofile=$(getarg iso-scan/filename=)
isofile=${isofile#/}

. /lib/liveorch-live-net.sh
device=""
squashfs=""
liveurl=$(live_url)
if [ -n "$liveurl" ]; then
    network_root "$liveurl"
    [ -n "$squashfs" ] && bare_root "$squashfs" "$liveurl (in RAM)"
elif [ -n "$isofile" ]; then
    mode=ro
    [ "$persistent" = 1 ] && mode=rw
    device=$(iso_scan "$isofile" "$mode") || fail "iso-scan: /$isofile not found on any filesystem"
    say "iso-scan: found /$isofile, attached as $device"
else
    device=$(live_device) || fail "root=$(getarg root=) is not a live medium liveorch can find"
    wait_for_path "$device" || fail "the live medium $device did not appear within ${timeout_s} s"
    # The node itself: a label's symlink may move to a loop device of the same medium.
    device=$(readlink -f "$device")
fi

case "$(blkid -o value -s TYPE "$device" 2> /dev/null)" in
    squashfs | erofs) bare_root "$device" "$device (the root image itself)" ;; # e.g. an AoE export of squashfs.img
esac

if getargbool 0 mediacheck || getargbool 0 rd.live.check; then
    media_check "$device"
fi

medium=$device
if [ "$persistent" = 1 ] && [ -z "$isofile" ]; then
    case "$device" in
        /dev/sr* | /dev/loop*) ;;
        *)
            # Mounting the stick itself would claim the whole disk, and then no partition
            # on it (the persistence partition) could be formatted or mounted.
            medium=$(losetup --find --show --read-only "$device") || fail "cannot attach the live medium $device"
            ;;
    esac
fi
mount -o ro "$medium" "$RUN/medium" || fail "cannot mount the live medium $device"
dir=$(getarg rd.live.dir=)
image=$(getarg rd.live.squashimg=)
squashfs="$RUN/medium/${dir:-LiveOS}/${image:-squashfs.img}"
if [ ! -f "$squashfs" ] && [ -z "$image" ] && [ -f "$RUN/medium/${dir:-LiveOS}/rootfs.img" ]; then
    squashfs="$RUN/medium/${dir:-LiveOS}/rootfs.img" # filesystem="erofs": the root image itself
fi
[ -f "$squashfs" ] || fail "no ${dir:-LiveOS}/${image:-squashfs.img} (or rootfs.img) on the live medium $device"

if [ -f /etc/liveorch/verity.conf ]; then
    # verity_blocks: every read of the root image is checked against the ISO's root hash.
    getargbool 0 rd.live.ram && say "rd.live.ram is not used with verity_blocks: the root stays on the medium"
    squashfs=$(liveorch-verity open "$RUN/medium") || fail "the live root image cannot be opened through dm-verity"
elif getargbool 0 rd.live.ram; then
    copy_to_ram "$squashfs" || fail "not enough memory to copy the live image into RAM"
    squashfs="$RUN/ram/$(basename "$squashfs")"
    umount "$RUN/medium"
    if [ -n "$isofile" ]; then
        losetup -d "$device"
        umount "$RUN/isoscan"
    fi
fi
mount_base "$squashfs" || fail "cannot mount the live root image $squashfs"

reason=""
if [ "$persistent" = 1 ]; then
    if [ -n "$isofile" ] && ! getargbool 0 rd.live.ram; then
        persistent_cowfile
    elif [ -n "$isofile" ]; then
        reason="rd.live.ram released the ISO's filesystem"
        false
    else
        persistent_partition "$device"
    fi || {
        say "persistence not possible: $reason; changes are kept in RAM only and lost at power-off"
        tmpfs_upper || fail "cannot mount a tmpfs for the overlay"
    }
else
    tmpfs_upper || fail "cannot mount a tmpfs for the overlay"
fi
mkdir -p "$RUN/cow/overlay/upper" "$RUN/cow/overlay/work" || fail "cannot prepare the overlay directories"
say "live root ready: $squashfs + overlay on $(findmnt -n -o SOURCE "$RUN/cow" 2> /dev/null || echo "$RUN/cow")"
exit 0
