#!/bin/sh
# Sourced by dracut's initqueue until the root is found: with dmsquash-live as the live
# module and root=live:/dev/mapper/<verity device>, opens that device once the medium
# shows up. Nothing to do for liveorch's own live module, which opens it itself.
/sbin/liveorch-verity settled || die "liveorch-verity: the live root cannot be opened through dm-verity (see above)"
