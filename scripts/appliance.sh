#!/usr/bin/env bash
# Sets up and runs the skiff appliance on this host: installs what is missing (QEMU,
# libvirt), starts libvirt, builds the release binary, and serves on SKIFF_LISTEN (default 127.0.0.1:8080) with its data
# in SKIFF_DATA_DIR (default /var/lib/skiff), with a Debian 12 template to boot. On the
# first start it prints the admin API key and the dashboard password (user admin,
# http://HOST:PORT/ui/), once.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

need_build_deps
if [ "$(id -u)" -eq 0 ]; then
    need_virt_host
    say "starting libvirt"
    start_libvirt
fi
say "building skiff (release)"
cargo build --release --locked
export SKIFF_DATA_DIR="${SKIFF_DATA_DIR:-/var/lib/skiff}"
export SKIFF_LISTEN="${SKIFF_LISTEN:-127.0.0.1:8080}"
# Something to boot: a real Debian 12 cloud image, built here from Debian's packages
# (scripts/build-debian-image.sh, a few minutes once, then cached) and imported as
# template "debian-12" unless the catalog has it already. SKIFF_DEBIAN_IMAGE=0 skips it.
if [ "$(id -u)" -eq 0 ] && [ "${SKIFF_DEBIAN_IMAGE:-1}" != 0 ] &&
    ! "$ROOT_DIR/target/release/skiff" template list 2>/dev/null | awk '{print $2}' | grep -qx debian-12; then
    say "building the Debian 12 cloud image"
    IMAGE=$(bash "$ROOT_DIR/scripts/build-debian-image.sh" | tail -n 1)
    say "importing it as template debian-12"
    "$ROOT_DIR/target/release/skiff" template import "$IMAGE" --name debian-12 \
        --version 12 --description "Debian 12 (bookworm) with cloud-init, built from Debian packages"
fi
say "starting skiff: data in $SKIFF_DATA_DIR"
exec "$ROOT_DIR/target/release/skiff" serve
