#!/bin/sh
# root=live:... is ours: tell dracut's cmdline stage the root is understood.

[ -z "$root" ] && root=$(getarg root=)
case "$root" in
    live:*)
        rootok=1
        ;;
esac
