#!/usr/bin/env bash
# Sets up and runs the skiff appliance on this host: installs what is missing (QEMU,
# libvirt), starts libvirt, builds the release binary, and serves on SKIFF_LISTEN (default 127.0.0.1:8080) with its data
# in SKIFF_DATA_DIR (default /var/lib/skiff). On the first start it prints the admin
# API key and the dashboard password (user admin, http://HOST:PORT/ui/), once.
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
say "starting skiff: data in $SKIFF_DATA_DIR"
exec "$ROOT_DIR/target/release/skiff" serve
