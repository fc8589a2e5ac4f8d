#!/bin/bash
# liveorch's verity module (verity_blocks): opens the live root image through dm-verity with
# the root hash that the iso stage puts in a second initramfs (/etc/liveorch/verity.conf).
# With flags="dmsquash" its initqueue hook makes /dev/mapper/live-verity, which the kernel
# command line names as dmsquash-live's medium; liveorch's own live module calls it directly.

check() {
    # Only when the plan asks for it; the image must carry dmsetup (dracut's dm module).
    require_binaries dmsetup losetup || return 1
    return 255
}

depends() {
    echo dm
    return 0
}

installkernel() {
    hostonly='' instmods dm-verity loop iso9660 sr_mod cdrom
}

install() {
    inst_multiple dmsetup losetup mount mountpoint mkdir dd blkid udevadm sed
    inst_script "$moddir/liveorch-verity.sh" "/sbin/liveorch-verity"
    inst_hook initqueue/settled 40 "$moddir/verity-settled.sh"
}
