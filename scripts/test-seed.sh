#!/usr/bin/env bash
# Builds a NoCloud seed image (1 MiB vfat labelled CIDATA) for the test guest made by
# test-template.sh. Only for checking the template by hand; skiff writes its own seeds.
#
#   test-seed.sh OUT.img DIR                         (DIR holds meta-data, user-data,
#                                                     and optionally network-config)
#   test-seed.sh OUT.img META-DATA USER-DATA [NETWORK-CONFIG]
#
# Attach OUT.img as an extra virtio disk (format=raw).
set -euo pipefail
exec 3>&1 1>&2

usage() { sed -n '5,7p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
out=$1
shift
if [ $# -eq 1 ] && [ -d "$1" ]; then
    dir=$1
    meta=$dir/meta-data
    user=$dir/user-data
    net=$dir/network-config
    [ -f "$net" ] || net=
else
    [ $# -ge 2 ] || usage
    meta=$1 user=$2 net=${3:-}
fi
[ -f "$meta" ] && [ -f "$user" ] || { echo "meta-data and user-data are required" >&2; exit 1; }

source "$(dirname "$(readlink -f "$0")")/lib.sh"
need_pkgs dosfstools mtools

export MTOOLS_SKIP_CHECK=1
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
rm -f "$tmp"
mkfs.vfat -n CIDATA -C "$tmp" 1024 >/dev/null
mcopy -i "$tmp" "$meta" ::meta-data
mcopy -i "$tmp" "$user" ::user-data
[ -z "$net" ] || mcopy -i "$tmp" "$net" ::network-config
mv "$tmp" "$out"
readlink -f "$out" >&3
