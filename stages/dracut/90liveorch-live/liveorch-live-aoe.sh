#!/bin/sh
# liveorch-live-aoe DEVICE: KIWI's root=live:aoe:/dev/etherd/e<shelf>.<slot>. The live system's
# device is an ATA-over-Ethernet export (vblade on a server of the same Ethernet segment):
# it holds the ISO, or the root image itself. AoE is plain Ethernet frames, so there is no
# address and no DHCP: the links only have to be up when the driver asks the segment for
# its targets. Prints the device's path once the kernel shows it; the messages go to the
# kernel log, because liveorch-live-root reads the path from stdout.
#
# The aoe driver and `ip` come with run --pxe (flags="overlay"); without them this says so.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin

# The kernel log reaches the console once; stderr (the service's journal+console) only
# when there is no kernel log to write to.
say() {
    echo "<5>liveorch-live: $*" 2> /dev/null > /dev/kmsg || echo "liveorch-live: $*" >&2
}

fail() {
    say "$*"
    exit 1
}

# The Ethernet links (ARPHRD_ETHER, type 1), once their drivers are bound.
ethernet_links() {
    for _link in /sys/class/net/*; do
        [ "$(cat "$_link/type" 2> /dev/null)" = 1 ] && echo "${_link##*/}"
    done
}

# For the message when no target answers: the links that were tried.
links_tried() {
    _names=$(ethernet_links | tr '\n' ' ')
    echo "${_names:-no Ethernet link}" | sed 's/ *$//'
}

# Brings every Ethernet link up: a NIC whose driver udev loads late joins in the next round.
links_up() {
    for _name in $(ethernet_links); do
        ip link set dev "$_name" up 2> /dev/null
    done
}

device=$1
case "$device" in
    /dev/etherd/e[0-9]*.[0-9]*) ;;
    *) fail "root=live:aoe:$device is not an AoE device: expected /dev/etherd/e<shelf>.<slot>" ;;
esac
timeout_s=$(getarg rd.live.timeout=)
timeout_s=${timeout_s:-180}

modprobe aoe 2> /dev/null || [ -e /dev/etherd/discover ] \
    || fail "root=live:aoe: this initrd has no aoe driver (build with liveorch run --pxe, flags=\"overlay\")"
command -v ip > /dev/null || fail "root=live:aoe: this initrd has no ip tool to bring the links up (liveorch run --pxe)"

target=${device#/dev/etherd/e}
say "looking for the AoE target shelf ${target%%.*} slot ${target#*.} ($device) on the local Ethernet ..."
read -r _now _ < /proc/uptime
deadline=$((${_now%.*} + timeout_s))
until [ -b "$device" ]; do
    links_up
    # Any write asks every target on the up links to announce itself.
    echo 2> /dev/null > /dev/etherd/discover
    udevadm settle --timeout=2 > /dev/null 2>&1
    [ -b "$device" ] && break
    read -r _now _ < /proc/uptime
    [ "${_now%.*}" -ge "$deadline" ] && fail "the AoE device $device did not appear within ${timeout_s} s" \
        "(links: $(links_tried)): is vblade exporting shelf ${target%%.*} slot ${target#*.}" \
        "on this Ethernet segment?"
    sleep 1
done
say "AoE device $device found ($(($(blockdev --getsz "$device" 2> /dev/null || echo 0) / 2048)) MiB)"
echo "$device"
