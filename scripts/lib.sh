# Shared helpers for skiff's scripts. Source it; do not run it.

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT_DIR

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the Debian packages in "$@" that are missing; apt-get update runs only when
# something must be installed.
need_pkgs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build dependencies of the skiff binary.
need_build_deps() {
    need_pkgs build-essential pkg-config ca-certificates libvirt-dev clang llvm libbpf-dev linux-libc-dev
    # build.rs installs the dashboard's pinned front-end libraries with npm.
    command -v npm >/dev/null || need_pkgs nodejs npm
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (the machine's stable toolchain)" >&2; return 1; }
}

# Python tools of the test suite, in a venv under target/ (pinned versions).
need_test_tools() {
    local venv="$ROOT_DIR/target/pyenv"
    if [ ! -x "$venv/bin/schemathesis" ]; then
        say "installing schemathesis into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT_DIR/scripts/requirements-test.txt"
    fi
    export SCHEMATHESIS_BIN="$venv/bin/schemathesis"
}

# The browser tests: Debian's chromium (never a downloaded browser) and playwright-core
# at the version tests/browser/package-lock.json pins.
need_browser_tools() {
    need_pkgs chromium chromium-driver fonts-dejavu-core
    if [ ! -d "$ROOT_DIR/tests/browser/node_modules/playwright-core" ] ||
        [ "$ROOT_DIR/tests/browser/package-lock.json" -nt "$ROOT_DIR/tests/browser/node_modules/.package-lock.json" ]; then
        say "installing playwright-core (tests/browser)"
        (cd "$ROOT_DIR/tests/browser" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
    fi
}

# QEMU and libvirt from Debian bookworm (qemu 7.2, libvirt 9.0). The machine image may
# carry qemu-utils 10 from backports, which conflicts: pin it to bookworm's version.
need_virt_host() {
    if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "install ok installed"; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        local v
        v=$(apt-cache madison qemu-utils | awk '$0 ~ /bookworm\/main|bookworm-security/ {print $3; exit}')
        say "installing qemu-system-x86 with qemu-utils $v"
        apt-get install -y -qq --no-install-recommends --allow-downgrades \
            "qemu-utils=$v" qemu-system-x86 >/dev/null
    fi
    need_pkgs libvirt-daemon-system libvirt-clients qemu-system-x86 iproute2 nftables conntrack iputils-ping \
        e2fsprogs xfsprogs btrfs-progs
}

# A test host for system tests: network namespace $SKT_NETNS with bridge $SKT_BRIDGE
# (10.231.0.1/24, nothing routed out), and a virtlogd + libvirtd of the tests' own
# running inside it, so that every tap of every guest lives there. The daemons also
# get a private mount namespace in which /etc/libvirt (a copy without anyone's domains)
# and /run/libvirt (sockets, pid and state files) are directories under
# $SKT_LIBVIRT_DIR: a libvirtd already running on this machine (the appliance's) keeps
# its sockets, state and domains, and is never stopped. /var/lib/libvirt stays shared:
# per-domain files there are named after the domain, and skiff (outside that mount
# namespace) must reach the VNC sockets libvirt puts there. Clients reach the tests'
# daemon through $SKT_LIBVIRT_URI. Exports SKT_NETNS, SKT_BRIDGE, SKT_LIBVIRT_DIR and
# SKT_LIBVIRT_URI.
test_host_env() {
    export SKT_NETNS=${SKT_NETNS:-skiff-test} SKT_BRIDGE=${SKT_BRIDGE:-sktbr0}
    export SKT_LIBVIRT_DIR=${SKT_LIBVIRT_DIR:-/run/skiff-test-libvirt}
    export SKT_LIBVIRT_URI="qemu:///system?socket=$SKT_LIBVIRT_DIR/run/libvirt-sock"
}

start_test_host() {
    test_host_env
    stop_test_host
    ip netns add "$SKT_NETNS"
    ip -n "$SKT_NETNS" link set lo up
    ip -n "$SKT_NETNS" link add "$SKT_BRIDGE" type bridge
    ip -n "$SKT_NETNS" addr add 10.231.0.1/24 dev "$SKT_BRIDGE"
    ip -n "$SKT_NETNS" link set "$SKT_BRIDGE" up
    if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm || true; fi
    mkdir -p /var/lib/skiff-test && chmod 0755 /var/lib/skiff-test
    local d=$SKT_LIBVIRT_DIR
    mkdir -p "$d/run" "$d/etc"
    cp -a /etc/libvirt/. "$d/etc/"
    rm -rf "$d/etc/qemu/"*.xml "$d/etc/qemu/autostart" 2>/dev/null || true
    mkdir -p /run/libvirt
    nsenter --net="/run/netns/$SKT_NETNS" unshare --mount --propagation private sh -c '
        set -e
        mount --bind "$1/etc" /etc/libvirt
        mount --bind "$1/run" /run/libvirt
        virtlogd -d -p "$1/virtlogd.pid"
        libvirtd -d -p "$1/libvirtd.pid"
    ' sh "$d"
    # The first connection waits while libvirt probes QEMU.
    local i
    for i in $(seq 60); do
        timeout 20 virsh -c "$SKT_LIBVIRT_URI" version >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "libvirtd did not come up" >&2
    return 1
}

# Undoes start_test_host: its guests, its two daemons (by their pid files), the
# namespace. Safe to call when nothing runs; touches no other libvirtd.
stop_test_host() {
    test_host_env
    local d p
    if timeout 5 virsh -c "$SKT_LIBVIRT_URI" version >/dev/null 2>&1; then
        for d in $(timeout 20 virsh -c "$SKT_LIBVIRT_URI" list --all --name 2>/dev/null | grep . || true); do
            timeout 20 virsh -c "$SKT_LIBVIRT_URI" destroy "$d" >/dev/null 2>&1 || true
            timeout 20 virsh -c "$SKT_LIBVIRT_URI" undefine "$d" --nvram >/dev/null 2>&1 || true
        done
    fi
    for d in libvirtd virtlogd; do
        p=$(cat "$SKT_LIBVIRT_DIR/$d.pid" 2>/dev/null) || continue
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    ip netns del "$SKT_NETNS" 2>/dev/null || true
    # VPC routers whose bridge port lived in the test namespace: their gw0 went with
    # it. A router that still has gw0 belongs to a running skiff: left alone.
    for n in $(ip netns list 2>/dev/null | awk '$1 ~ /^skiff-vpc-/ { print $1 }'); do
        ip -n "$n" link show gw0 >/dev/null 2>&1 || ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$SKT_LIBVIRT_DIR"
    # The system tests' firewall pins (maps and links outlive skiff by design).
    rm -rf /sys/fs/bpf/skiff-test-* 2>/dev/null || true
}

# For scripts/test.sh: a libvirtd in the machine's own namespaces that the tests must
# leave alone. An already running one (an appliance's) is only watched; otherwise one
# is started on the default paths with a paused guest, and stopped again by
# check_bystander, which fails when the tests disturbed either.
BYSTANDER_DOMAIN=skiff-bystander
start_bystander() {
    BYSTANDER_OWN=0
    if ! timeout 5 virsh -c qemu:///system version >/dev/null 2>&1; then
        start_libvirt
        BYSTANDER_OWN=1
        virsh -q -c qemu:///system destroy "$BYSTANDER_DOMAIN" >/dev/null 2>&1 || true
        virsh -q -c qemu:///system undefine "$BYSTANDER_DOMAIN" >/dev/null 2>&1 || true
        local x
        x=$(mktemp)
        cat >"$x" <<XML
<domain type='qemu'><name>$BYSTANDER_DOMAIN</name><memory unit='MiB'>32</memory>
<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>
XML
        virsh -q -c qemu:///system define "$x" >/dev/null
        rm -f "$x"
        virsh -q -c qemu:///system start --paused "$BYSTANDER_DOMAIN" >/dev/null
    fi
    BYSTANDER_PID=$(cat /run/libvirtd.pid 2>/dev/null || echo none)
    BYSTANDER_RUNNING=$(virsh -q -c qemu:///system list --name 2>/dev/null | sort | tr '\n' ' ')
    export BYSTANDER_OWN BYSTANDER_PID BYSTANDER_RUNNING
}

check_bystander() {
    local rc=${1:-0} now running
    now=$(cat /run/libvirtd.pid 2>/dev/null || echo none)
    running=$(virsh -q -c qemu:///system list --name 2>/dev/null | sort | tr '\n' ' ')
    if [ "$now" != "$BYSTANDER_PID" ] || [ "$running" != "$BYSTANDER_RUNNING" ]; then
        echo "FAILED: the tests disturbed the machine's libvirtd (pid $BYSTANDER_PID -> $now; guests [$BYSTANDER_RUNNING] -> [$running])" >&2
        rc=1
    fi
    if [ "$BYSTANDER_OWN" = 1 ]; then
        virsh -q -c qemu:///system destroy "$BYSTANDER_DOMAIN" >/dev/null 2>&1 || true
        virsh -q -c qemu:///system undefine "$BYSTANDER_DOMAIN" >/dev/null 2>&1 || true
        local d p
        for d in libvirtd virtlogd; do
            p=$(cat "/run/$d.pid" 2>/dev/null) || continue
            kill "$p" 2>/dev/null || true
        done
    fi
    exit "$rc"
}

# libvirt for the appliance itself (no systemd here): virtlogd and libvirtd in this
# namespace, started only if they are not running yet.
start_libvirt() {
    if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm || true; fi
    # Asked through the default socket, not by process name: the tests' own libvirtd
    # (another namespace, another socket) must not count.
    timeout 5 virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    local p
    { p=$(cat /run/virtlogd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null; } || virtlogd -d
    { p=$(cat /run/libvirtd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null; } || libvirtd -d
    local i
    for i in $(seq 60); do
        timeout 20 virsh -c qemu:///system version >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "libvirtd did not come up" >&2
    return 1
}

# Replaces the section <!-- NAME-bench:start --> … <!-- NAME-bench:end --> of
# docs/benchmarks.md with TABLE (which carries the markers), or appends it.
write_bench_section() {
    python3 - "$1" "$2" "$ROOT_DIR/docs/benchmarks.md" <<'PY'
import re, sys
name, table, path = sys.argv[1:4]
text = open(path).read()
pat = re.compile(r"<!-- %s-bench:start -->.*?<!-- %s-bench:end -->" % (name, name), re.S)
text = pat.sub(lambda _: table, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + table + "\n"
open(path, "w").write(text)
PY
}
