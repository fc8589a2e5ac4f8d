#!/bin/sh
# Without systemd in the initramfs: prepare the layers, then mount the overlay on $NEWROOT.

[ "${root%%:*}" = "live" ] || return 0
/sbin/liveorch-live-root || die "liveorch-live: no live root"
mount -t overlay -o lowerdir=/run/liveorch/base,upperdir=/run/liveorch/cow/overlay/upper,workdir=/run/liveorch/cow/overlay/work \
    liveorch-live "$NEWROOT" || die "liveorch-live: cannot mount the overlay"
