#!/usr/bin/env bash
# The package test (issue 7): builds skiff's .deb twice (two versions) from a given
# binary, checks it with lintian, installs the first into a clean Debian 12 root made
# with debootstrap (chroot, no systemd), checks files, conffiles, permissions,
# `skiff --version`, `skiff doctor` and that `skiff serve` answers /health over HTTPS
# from the installed configuration; then installs the second over it and finds the
# data intact; then removes (data kept) and purges (data gone). Needs root.
# Everything that listens runs in a network namespace this script creates.
# Usage: scripts/test-package.sh SKIFF_BINARY
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

BIN=$(readlink -f "$1")
need_pkgs debootstrap lintian dpkg-dev curl
W=$(mktemp -d /var/tmp/skiff-pkg.XXXXXX)
NS="skiff-pkg-$$"
R="$W/root"
cleanup() {
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
    umount "$R/proc" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
in_root() { ip netns exec "$NS" chroot "$R" "$@"; }

say "building two package versions"
V1=0.1.0-1 V2=0.1.1-1
DEB1=$(bash packaging/build-deb.sh --binary "$BIN" --version "$V1" --out "$W/debs" | tail -n 1)
DEB2=$(bash packaging/build-deb.sh --binary "$BIN" --version "$V2" --out "$W/debs" | tail -n 1)

say "lintian"
lintian --fail-on error --no-tag-display-limit "$DEB1" || fail "lintian reports errors"
if command -v systemd-analyze >/dev/null; then
    say "systemd-analyze verify (the unit's syntax and options)"
    mkdir -p "$W/unit"
    sed "s#/usr/bin/skiff#$BIN#" packaging/skiff.service > "$W/unit/skiff.service"
    systemd-analyze verify "$W/unit/skiff.service" || fail "systemd-analyze verify"
else
    echo "note: no systemd-analyze here; the unit's syntax is not checked" >&2
fi

# A Debian 12 root with the package's dependencies, made once per machine and per
# dependency list, then unpacked fresh for every run.
DEPS=$(dpkg-deb -f "$DEB1" Depends | tr ',' '\n' | sed 's/([^)]*)//; s/|.*//; s/ //g' | grep -v '^$' | tr '\n' ' ')
CACHE=${SKIFF_TEMPLATE_CACHE:-/var/cache/skiff-test}
KEY=$(echo "bookworm minbase $DEPS curl ca-certificates" | sha256sum | cut -c1-12)
TAR="$CACHE/debian12-root-$KEY.tar"
if [ ! -f "$TAR" ]; then
    say "debootstrap bookworm and the dependencies ($DEPS) into $TAR"
    B="$W/build"
    debootstrap --variant=minbase bookworm "$B" http://deb.debian.org/debian >/dev/null
    printf '#!/bin/sh\nexit 101\n' > "$B/usr/sbin/policy-rc.d"
    chmod 0755 "$B/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive chroot "$B" apt-get install -y -qq --no-install-recommends \
        $DEPS curl ca-certificates >/dev/null
    chroot "$B" apt-get clean
    mkdir -p "$CACHE"
    tar -C "$B" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"
    rm -rf "$B"
fi
mkdir -p "$R"
tar -C "$R" -xf "$TAR"
mount -t proc proc "$R/proc"
ip netns add "$NS"
ip -n "$NS" link set lo up

say "installing $V1"
cp "$DEB1" "$DEB2" "$R/tmp/"
OUT=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "/tmp/$(basename "$DEB1")" 2>&1) ||
    { echo "$OUT"; fail "apt-get install of $V1"; }
echo "$OUT" | grep -q "Sign in at https://" || { echo "$OUT"; fail "postinst did not say how to sign in"; }
PW_NOW=$(sed -n 's/^dashboard:   user admin password //p' "$R/var/lib/skiff/initial-credentials")
! echo "$OUT" | grep -qF -- "$PW_NOW" || fail "postinst printed the password into apt's log"
! echo "$OUT" | grep -q 'raff_' || fail "postinst printed the API key into apt's log"
[ "$(in_root dpkg-query -W -f='${Version}' skiff)" = "$V1" ] || fail "version after install"

say "files, conffiles, permissions"
for f in /usr/bin/skiff /lib/systemd/system/skiff.service /etc/skiff/skiff.toml \
    /usr/share/doc/skiff/copyright /etc/skiff/tls/cert.pem /etc/skiff/tls/key.pem \
    /var/lib/skiff/db /var/lib/skiff/initial-credentials; do
    [ -e "$R$f" ] || fail "missing $f"
done
in_root dpkg-query -W -f='${Conffiles}\n' skiff | grep -q '^ /etc/skiff/skiff.toml ' || fail "skiff.toml is not a conffile"
[ "$(stat -c %a "$R/var/lib/skiff")" = 700 ] || fail "/var/lib/skiff is not 0700"
[ "$(stat -c %a "$R/etc/skiff/tls/key.pem")" = 600 ] || fail "the TLS key is not 0600"
[ "$(stat -c %a "$R/var/lib/skiff/initial-credentials")" = 600 ] || fail "the credentials are not 0600"
! in_root getent passwd skiff >/dev/null || fail "an unexpected skiff user"
grep -q '^Restart=on-failure' "$R/lib/systemd/system/skiff.service" || fail "no restart policy"
in_root skiff --version | grep -q '^skiff ' || fail "skiff --version"
DOC=$(in_root skiff --config /etc/skiff/skiff.toml doctor || true)
echo "$DOC"
echo "$DOC" | grep -q '^ok    tls ' || fail "doctor: the installed certificate does not work"
echo "$DOC" | grep -q 'checks: ' || fail "doctor printed no summary"
KEYLINE=$(grep 'admin key:' "$R/var/lib/skiff/initial-credentials" | awk '{print $3}')
PASSWORD=$(sed -n 's/^dashboard:   user admin password //p' "$R/var/lib/skiff/initial-credentials")
[ -n "$KEYLINE" ] && [ -n "$PASSWORD" ] || fail "initial-credentials lacks the key or the password"

serve() {
    # Not through in_root: $! must be skiff itself (ip and chroot exec it) to stop it.
    ip netns exec "$NS" chroot "$R" skiff --config /etc/skiff/skiff.toml serve >"$W/serve.log" 2>&1 &
    SERVE_PID=$!
    local i
    for i in $(seq 60); do
        grep -q "listening on https://" "$W/serve.log" && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || { cat "$W/serve.log"; fail "skiff serve exited"; }
        sleep 0.5
    done
    cat "$W/serve.log"
    fail "skiff serve did not listen"
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=; }
https() { ip netns exec "$NS" curl -s --max-time 10 --cacert "$R/etc/skiff/tls/cert.pem" "$@"; }

say "skiff serve from the installed configuration, over HTTPS"
serve
[ "$(https https://127.0.0.1:8443/health)" = '{"status":"healthy"}' ] || fail "/health over HTTPS"
https -o /dev/null -w '%{http_code}' https://localhost:8443/ui/login | grep -q 200 || fail "dashboard over HTTPS"
ADD=$(https -H "X-API-Key: $KEYLINE" -H 'Content-Type: application/json' \
    -d '{"name":"kept","public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT user@host"}' \
    https://127.0.0.1:8443/api/v1/ssh-keys)
echo "$ADD" | grep -q '"kept"' || fail "API over HTTPS: $ADD"
stop

say "installing $V2 over it"
OUT=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "/tmp/$(basename "$DEB2")" 2>&1) ||
    { echo "$OUT"; fail "apt-get install of $V2"; }
[ "$(in_root dpkg-query -W -f='${Version}' skiff)" = "$V2" ] || fail "version after the upgrade"
! echo "$OUT" | grep -q "Sign in at" || fail "the upgrade ran skiff init again"
serve
https -H "X-API-Key: $KEYLINE" https://127.0.0.1:8443/api/v1/ssh-keys | grep -q '"kept"' ||
    fail "data lost in the upgrade"
stop

say "remove keeps the data; purge deletes it"
in_root dpkg -r skiff >/dev/null
[ -e "$R/var/lib/skiff/db" ] && [ -e "$R/etc/skiff/skiff.toml" ] || fail "remove deleted data or configuration"
[ ! -e "$R/usr/bin/skiff" ] || fail "remove left the binary"
in_root dpkg -P skiff >/dev/null
[ ! -e "$R/var/lib/skiff" ] && [ ! -e "$R/etc/skiff" ] || fail "purge left data or configuration"
say "package test passed"
