#!/bin/sh
# Mounts /sysroot as an overlay only after liveorch-live-root prepared its layers,
# replacing the sysroot.mount that systemd's fstab generator derives from root=.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

root=$(getarg root=)
[ "${root%%:*}" = "live" ] || exit 0

dir="$2"
[ -n "$dir" ] || exit 1
mkdir -p "$dir/initrd-root-fs.target.requires"
{
    echo "[Unit]"
    echo "Description=Live system root (liveorch overlay)"
    echo "Requires=liveorch-live-root.service"
    echo "After=liveorch-live-root.service"
    echo "Before=initrd-root-fs.target"
    echo "[Mount]"
    echo "What=liveorch-live"
    echo "Where=/sysroot"
    echo "Type=overlay"
    echo "Options=lowerdir=/run/liveorch/base,upperdir=/run/liveorch/cow/overlay/upper,workdir=/run/liveorch/cow/overlay/work"
} > "$dir/sysroot.mount"
ln -sf ../sysroot.mount "$dir/initrd-root-fs.target.requires/sysroot.mount"
