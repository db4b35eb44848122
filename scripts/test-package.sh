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
    stop_root_libvirt
    umount -R "$R/dev" 2>/dev/null || true
    umount -R "$R/sys" 2>/dev/null || true
    umount "$R/proc" 2>/dev/null || true
    umount -R "$R" 2>/dev/null || umount -lR "$R" 2>/dev/null || true
    rm -rf "/sys/fs/bpf/skiff-pkg-$$" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$W"
}
# The root's own libvirtd and virtlogd (a guest from the installed package), by pid.
stop_root_libvirt() {
    local d p
    for d in libvirtd virtlogd; do
        p=$(cat "$R/run/$d.pid" 2>/dev/null) || continue
        kill "$p" 2>/dev/null || true
    done
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
# The root is a mount point, as on a real host: libvirt makes QEMU's mount namespace
# private from "/" (it fails on a plain directory).
mount --bind "$R" "$R"
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

say "a guest from the installed package: its libvirtd beside it, everything in $NS"
TEMPLATE=${SKT_TEMPLATE:-$(bash "$ROOT_DIR/scripts/test-template.sh" | tail -n 1)}
[ "$(stat -c %a "$R/var/lib/skiff")" = 700 ] || fail "/var/lib/skiff is not 0700 before the guest"
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev"
mount --rbind /sys "$R/sys" && mount --make-rslave "$R/sys"
# Inside a chroot libvirt cannot build QEMU's private /dev (QEMU then finds no
# /dev/urandom); on a real host it can. Only libvirt's own setting changes here.
grep -q '^namespaces' "$R/etc/libvirt/qemu.conf" || echo 'namespaces = [ ]' >> "$R/etc/libvirt/qemu.conf"
in_root virtlogd -d
in_root libvirtd -d
for i in $(seq 60); do
    timeout 20 ip netns exec "$NS" chroot "$R" virsh -c qemu:///system version >/dev/null 2>&1 && break
    [ "$i" = 60 ] && fail "the root's libvirtd did not come up"
    sleep 1
done
cp "$TEMPLATE" "$R/tmp/guest.qcow2"
TID=$(in_root skiff --config /etc/skiff/skiff.toml template import /tmp/guest.qcow2 --name guest --json |
    sed -n 's/.*"id": *"\([0-9a-f-]*\)".*/\1/p' | head -n 1)
[ -n "$TID" ] || fail "template import"
# The installed configuration, but its own pin directory (the host may run skiff too).
export SKIFF_NETWORK__FIREWALL__BPF_DIR="/sys/fs/bpf/skiff-pkg-$$"
serve
unset SKIFF_NETWORK__FIREWALL__BPF_DIR
api() { https -H "X-API-Key: $KEYLINE" -H 'Content-Type: application/json' "$@"; }
PROJECT=$(api https://127.0.0.1:8443/api/v1/projects | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p' | head -n 1)
VM=$(api -H "X-Project-ID: $PROJECT" -d "{\"name\":\"pkg-1\",\"template_id\":\"$TID\",\"pricing_id\":1,\"region\":\"us-east\",\"ssh_keys\":[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT user@host\"]}" \
    https://127.0.0.1:8443/api/v1/vms)
VMID=$(echo "$VM" | sed -n 's/.*"data":{"id":"\([0-9a-f-]*\)".*/\1/p')
[ -n "$VMID" ] || { cat "$W/serve.log"; fail "VM create: $VM"; }
STATUS=
for i in $(seq 240); do
    STATUS=$(api "https://127.0.0.1:8443/api/v1/vms/$VMID" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' | head -n 1)
    [ "$STATUS" = active ] && break
    [ "$STATUS" = failure ] && break
    sleep 1
done
[ "$STATUS" = active ] || { cat "$W/serve.log"; fail "the guest did not become active (status $STATUS)"; }
echo "guest $VMID is active"
[ "$(stat -c '%a %G' "$R/var/lib/skiff")" = "710 libvirt-qemu" ] ||
    fail "/var/lib/skiff: $(stat -c '%a %G' "$R/var/lib/skiff") (want 710 libvirt-qemu)"
[ "$(stat -c %a "$R/var/lib/skiff/db")" = 700 ] || fail "/var/lib/skiff/db is not 0700"
api -X DELETE -H "X-Project-ID: $PROJECT" "https://127.0.0.1:8443/api/v1/vms/$VMID" | grep -q '"success":true' ||
    fail "VM delete"
for i in $(seq 120); do
    ip netns exec "$NS" chroot "$R" virsh -c qemu:///system list --all --name | grep -q "$VMID" || break
    sleep 1
done
stop
stop_root_libvirt
umount -R "$R/dev" "$R/sys"

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
