#!/bin/sh
# Network live boot for liveorch-live-root (sourced by it): root=live:http|https|ftp://...
# fetches either the ISO itself, as KIWI boots it, or a bare root image (the squashfs), into
# RAM. Nothing downloaded is mounted before it is checked: against the `.sha256` the server
# publishes beside it, else (an ISO) against the checksum implanted in the ISO.
#
# With rd.kiwi.live.system=DISK the ISO is written to that local disk once and the system
# boots from the disk (persistence, when asked for, goes on it too); later boots find it
# there and leave it alone, without downloading, unless rd.kiwi.live.reset is given. A disk
# that holds anything else (a filesystem, a partition table) is never wiped without
# rd.kiwi.live.reset.
#
# KIWI's parameters: rd.kiwi.live.curl_options= (curl options, commas for spaces),
# ramdisk_size= (KiB of RAM for the download), rd.kiwi.live.system=, rd.kiwi.live.reset.

live_url() {
    _root=$(getarg root=)
    case "${_root#live:}" in
        http://* | https://* | ftp://*) echo "${_root#live:}" ;;
        *) return 1 ;;
    esac
}

# dracut's network module brings the interfaces up (ip=dhcp rd.neednet=1): an address is there.
network_up() {
    ls /tmp/net.*.did-setup > /dev/null 2>&1 || ip route show default 2> /dev/null | grep -q .
}

# curl with KIWI's rd.kiwi.live.curl_options (a comma separates options: the kernel command
# line has no quoting); retries cover a server that is still starting.
fetch() {
    _options=$(getarg rd.kiwi.live.curl_options=)
    # shellcheck disable=SC2086 # the options are words by design
    curl --globoff --location --fail --show-error --silent --retry 5 --retry-connrefused --retry-delay 2 \
        $(echo "$_options" | tr ',' ' ') --output "$2" -- "$1"
}

download() {
    command -v curl > /dev/null || fail "root=live:$1 needs curl and the network in the initrd (liveorch run --pxe)"
    say "waiting for the network (ip=dhcp) to fetch $1 ..."
    wait_until network_up || fail "no network within ${timeout_s} s (no DHCP answer?): cannot fetch $1"
    mkdir -p "$RUN/ram"
    _size=$(getarg ramdisk_size=)
    mount -t tmpfs -o "mode=0700${_size:+,size=${_size}k}" liveorch-ram "$RUN/ram" \
        || fail "cannot mount a tmpfs for the live image"
    say "downloading $1 into RAM ..."
    fetch "$1" "$2" || fail "cannot download $1 (curl exit $?): is the server up, the URL right and RAM big enough" \
        "(ramdisk_size=)?"
    say "downloaded $(($(stat -c %s "$2") / 1048576)) MiB from $1"
}

# The download against URL.sha256 when the server has one; an ISO without one against its
# implanted MD5 (checkisomd5). A mismatch stops the boot here, before anything is mounted.
verify_download() {
    _file=$1
    _url=$2
    if fetch "$_url.sha256" "$RUN/ram/expected.sha256" 2> /dev/null; then
        _want=$(cut -d ' ' -f 1 < "$RUN/ram/expected.sha256")
        _have=$(sha256sum < "$_file" | cut -d ' ' -f 1)
        [ "$_want" = "$_have" ] || fail "the download of $_url is damaged or incomplete: its sha256 is $_have," \
            "but $_url.sha256 says $_want; not booting it"
        say "download verified: sha256 matches $_url.sha256"
    elif [ "$(blkid -p -o value -s TYPE "$_file" 2> /dev/null)" = iso9660 ] && command -v checkisomd5 > /dev/null; then
        checkisomd5 "$_file" < /dev/null > /dev/null 2>&1 || fail "the download of $_url is damaged or" \
            "incomplete: its implanted checksum does not match (checkisomd5); not booting it"
        say "download verified: the ISO's implanted checksum matches (no $_url.sha256 on the server)"
    else
        fail "cannot verify the download of $_url: the server has no $_url.sha256 and the image no implanted" \
            "checksum that checkisomd5 could check; not booting it"
    fi
    rm -f "$RUN/ram/expected.sha256"
}

# What a disk holds, for the refusal to wipe it: empty when blkid finds nothing on it.
disk_contents() {
    blkid -p -o export "$1" 2> /dev/null | sed -n 's/^\(TYPE\|PTTYPE\|LABEL\)=\(.*\)/\1 \2/p' | tr '\n' ' '
}

# A live system deployed earlier: the disk starts with an ISO holding a live root.
deployed_live_system() {
    [ "$(blkid -p -o value -s TYPE "$1" 2> /dev/null)" = iso9660 ] || return 1
    mkdir -p "$RUN/probe"
    mount -o ro -t iso9660 "$1" "$RUN/probe" 2> /dev/null || return 1
    _found=1
    [ -d "$RUN/probe/LiveOS" ] && _found=0
    umount "$RUN/probe"
    return $_found
}

# Writes the checked ISO to the disk: the data, then the end of the disk cleared, where an
# earlier deployment's persistence partition and backup partition table may linger.
write_to_disk() {
    _iso=$1
    _disk=$2
    say "deploying the live system to $_disk ($(($(stat -c %s "$_iso") / 1048576)) MiB) ..."
    dd if="$_iso" of="$_disk" bs=4M conv=fsync 2> /dev/null || fail "writing the live system to $_disk failed"
    _sectors=$(blockdev --getsz "$_disk")
    dd if=/dev/zero of="$_disk" bs=512 seek=$((_sectors - 2048)) count=2048 conv=fsync 2> /dev/null
    _cow=$(($(stat -c %s "$_iso") / 512 + 64))
    [ $((_cow + 8192)) -lt "$_sectors" ] && dd if=/dev/zero of="$_disk" bs=512 seek="$_cow" count=8192 \
        conv=fsync 2> /dev/null
    blockdev --rereadpt "$_disk" 2> /dev/null
    udevadm settle --timeout=10 > /dev/null 2>&1
    say "deployed to $_disk: later boots use it without the network (rd.kiwi.live.reset redeploys)"
}

# rd.kiwi.live.system=DISK: sets $device to the disk, deploying the ISO at $1 first when the
# disk does not hold a live system yet, or when rd.kiwi.live.reset asks for it.
deploy_live_system() {
    _url=$1
    _disk=$2
    wait_for_path "$_disk" || fail "rd.kiwi.live.system=$_disk: no such disk within ${timeout_s} s"
    _disk=$(readlink -f "$_disk")
    _reset=0
    getargbool 0 rd.kiwi.live.reset && _reset=1
    if [ "$_reset" = 0 ] && deployed_live_system "$_disk"; then
        say "rd.kiwi.live.system=$_disk already holds a live system: booting it, nothing downloaded" \
            "(rd.kiwi.live.reset redeploys)"
        device=$_disk
        return 0
    fi
    _held=$(disk_contents "$_disk")
    if [ "$_reset" = 0 ] && [ -n "$_held" ]; then
        fail "rd.kiwi.live.system=$_disk holds data (${_held% }) and no live system: not wiping it;" \
            "add rd.kiwi.live.reset to overwrite the disk"
    fi
    download "$_url" "$RUN/ram/live.iso"
    verify_download "$RUN/ram/live.iso" "$_url"
    [ "$(blkid -p -o value -s TYPE "$RUN/ram/live.iso" 2> /dev/null)" = iso9660 ] \
        || fail "rd.kiwi.live.system deploys an ISO, and $_url is not one"
    write_to_disk "$RUN/ram/live.iso" "$_disk"
    rm -f "$RUN/ram/live.iso"
    umount "$RUN/ram"
    device=$_disk
}

# root=live:URL: sets $device to the ISO (attached read-only from RAM, or the deployed disk),
# or $squashfs to a bare root image in RAM.
network_root() {
    _url=$1
    _system=$(getarg rd.kiwi.live.system=)
    if [ -n "$_system" ]; then
        deploy_live_system "$_url" "$_system"
        return 0
    fi
    download "$_url" "$RUN/ram/live.img"
    verify_download "$RUN/ram/live.img" "$_url"
    if [ "$(blkid -p -o value -s TYPE "$RUN/ram/live.img" 2> /dev/null)" = iso9660 ]; then
        device=$(losetup --find --show --read-only "$RUN/ram/live.img") || fail "cannot attach the downloaded ISO"
    else
        squashfs="$RUN/ram/live.img"
    fi
    if [ "$persistent" = 1 ]; then
        say "persistence not possible: the live system came over the network into RAM (rd.kiwi.live.system=DISK" \
            "deploys it to a disk); changes are kept in RAM only and lost at power-off"
        persistent=0
    fi
}
