#!/bin/bash
# liveorch's live boot module: a read-only root image (squashfs, EROFS, or ext4 in squashfs)
# + overlayfs, optionally persistent.
# Installed by liveorch's initrd stage; the image needs no package for it.

check() {
    # A live medium is never the build host: only when asked for.
    return 255
}

depends() {
    echo rootfs-block
    return 0
}

installkernel() {
    instmods squashfs loop iso9660 overlay ext4 xfs vfat sr_mod cdrom
    # filesystem="erofs": a kernel without EROFS is refused before the initrd is built
    hostonly='' instmods erofs
}

install() {
    inst_multiple mount umount blkid losetup blockdev mkdir rmdir cp sleep udevadm readlink basename dd od tr sed grep stat rm
    # Persistence and media check: present only when the image carries the tools.
    inst_multiple -o sfdisk partx mkfs.ext4 mkfs.xfs truncate checkisomd5 findmnt
    # Network boot (root=live:URL, with curl from url-lib): checking and deploying the download.
    inst_multiple -o sha256sum cut ip
    inst_simple "$moddir/liveorch-live-net.sh" "/lib/liveorch-live-net.sh"
    inst_hook cmdline 30 "$moddir/parse-liveorch-live.sh"
    inst_script "$moddir/liveorch-live-root.sh" "/sbin/liveorch-live-root"
    # root=live:aoe:...: the aoe driver comes with run --pxe (the plan adds it to dracut's
    # drivers, next to the network modules that bring `ip`); without it the script says so.
    inst_script "$moddir/liveorch-live-aoe.sh" "/sbin/liveorch-live-aoe"
    if dracut_module_included "systemd-initrd"; then
        inst_script "$moddir/liveorch-live-generator.sh" "$systemdutildir/system-generators/liveorch-live-generator"
        inst_simple "$moddir/liveorch-live-root.service" "$systemdsystemunitdir/liveorch-live-root.service"
    else
        inst_hook mount 30 "$moddir/mount-liveorch-live.sh"
    fi
}
