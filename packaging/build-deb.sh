#!/usr/bin/env bash
# Builds skiff's Debian package with plain dpkg-deb and prints its path as the last line.
# Usage: packaging/build-deb.sh [--binary PATH] [--version VERSION] [--out DIR]
#   --binary   an already built skiff binary (default: cargo build --release --locked)
#   --version  the package version (default: Cargo.toml's version with revision -1)
#   --out      where the .deb goes (default: target/deb)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN="" VERSION="" OUT="$ROOT/target/deb"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BIN=$2; shift 2 ;;
        --version) VERSION=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --locked >&2)
    BIN="$ROOT/target/release/skiff"
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
if [ -z "$VERSION" ]; then
    VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)-1"
fi
ARCH=$(dpkg --print-architecture)
case "$ARCH" in
    amd64) QEMU=qemu-system-x86 ;;
    arm64) QEMU=qemu-system-arm ;;
    *) QEMU=qemu-system ;;
esac

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
P="$W/pkg"
install -d -m 0755 "$P/DEBIAN" "$P/usr/bin" "$P/lib/systemd/system" "$P/etc/skiff" \
    "$P/usr/share/doc/skiff"
install -m 0755 "$BIN" "$P/usr/bin/skiff"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$P/usr/bin/skiff"
install -m 0644 "$HERE/skiff.service" "$P/lib/systemd/system/skiff.service"
install -m 0644 "$HERE/skiff.toml" "$P/etc/skiff/skiff.toml"
install -m 0644 "$HERE/debian/copyright" "$P/usr/share/doc/skiff/copyright"
install -m 0644 "$ROOT/README.md" "$P/usr/share/doc/skiff/README.md"
gzip -9n > "$P/usr/share/doc/skiff/changelog.Debian.gz" <<CHANGES
skiff ($VERSION) unstable; urgency=medium

  * Built from the skiff repository; see its git history.

 -- skiff developers <skiff@example.org>  $(LC_ALL=C date -u -R)
CHANGES
for s in postinst prerm postrm; do
    install -m 0755 "$HERE/debian/$s" "$P/DEBIAN/$s"
done
install -m 0644 "$HERE/debian/conffiles" "$P/DEBIAN/conffiles"

# Shared-library dependencies, as dpkg-shlibdeps finds them.
mkdir -p "$W/src/debian"
printf 'Source: skiff\n\nPackage: skiff\nArchitecture: any\n' > "$W/src/debian/control"
SHLIBS=$(cd "$W/src" && dpkg-shlibdeps -O -e "$P/usr/bin/skiff" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }
SIZE=$(du -sk --exclude=DEBIAN "$P" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@SHLIBS@/$SHLIBS/" -e "s/@QEMU@/$QEMU/" "$HERE/debian/control.in" > "$P/DEBIAN/control"
(cd "$P" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$P/DEBIAN/md5sums" "$P/DEBIAN/control"
mkdir -p "$OUT"
DEB="$OUT/skiff_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$P" "$DEB" >&2
echo "$DEB"
