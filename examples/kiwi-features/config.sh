#!/bin/bash
# KIWI's config.sh: runs inside the image root after the overlay and the system settings.
set -euo pipefail
test -f /.kconfig && . /.kconfig
test -f /.profile && . /.profile

Echo "configuring ${kiwi_iname} ${kiwi_iversion} (profiles: ${kiwi_profiles}, type ${kiwi_type})"
mkdir -p /etc/liveorch
echo "${kiwi_iname} ${kiwi_iversion} ${kiwi_profiles} ${kiwi_type}" > /etc/liveorch/profile-seen
baseInsertService liveorch-hello.service
baseSetRunlevel 3
