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
    need_pkgs libvirt-daemon-system libvirt-clients qemu-system-x86 iproute2 iputils-ping
}

# A test host for system tests: network namespace $SKT_NETNS with bridge $SKT_BRIDGE
# (10.231.0.1/24, nothing routed out), virtlogd and libvirtd running inside it so that
# every tap of every guest lives there. Exports SKT_NETNS and SKT_BRIDGE.
start_test_host() {
    export SKT_NETNS=${SKT_NETNS:-skiff-test} SKT_BRIDGE=${SKT_BRIDGE:-sktbr0}
    stop_test_host
    ip netns add "$SKT_NETNS"
    ip -n "$SKT_NETNS" link set lo up
    ip -n "$SKT_NETNS" link add "$SKT_BRIDGE" type bridge
    ip -n "$SKT_NETNS" addr add 10.231.0.1/24 dev "$SKT_BRIDGE"
    ip -n "$SKT_NETNS" link set "$SKT_BRIDGE" up
    if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm || true; fi
    mkdir -p /var/lib/skiff-test && chmod 0755 /var/lib/skiff-test
    nsenter --net="/run/netns/$SKT_NETNS" virtlogd -d
    nsenter --net="/run/netns/$SKT_NETNS" libvirtd -d
    # The first connection waits while libvirt probes QEMU.
    local i
    for i in $(seq 60); do
        timeout 20 virsh -c qemu:///system version >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "libvirtd did not come up" >&2
    return 1
}

# Undoes start_test_host: guests, daemons, namespace. Safe to call when nothing runs.
stop_test_host() {
    local d
    if timeout 5 virsh -c qemu:///system version >/dev/null 2>&1; then
        for d in $(timeout 20 virsh -c qemu:///system list --all --name 2>/dev/null | grep '^skiff-test-' || true); do
            timeout 20 virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
            timeout 20 virsh -c qemu:///system undefine "$d" --nvram >/dev/null 2>&1 || true
        done
    fi
    for d in libvirtd virtlogd; do
        if [ -f "/run/$d.pid" ]; then kill "$(cat "/run/$d.pid")" 2>/dev/null || true; fi
        pkill -x "$d" 2>/dev/null || true
    done
    for _ in $(seq 50); do pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null || break; sleep 0.1; done
    rm -f /run/libvirtd.pid /run/virtlogd.pid
    ip netns del "${SKT_NETNS:-skiff-test}" 2>/dev/null || true
    # The system tests' firewall pins (maps and links outlive skiff by design).
    rm -rf /sys/fs/bpf/skiff-test-* 2>/dev/null || true
}

# libvirt for the appliance itself (no systemd here): virtlogd and libvirtd in this
# namespace, started only if they are not running yet.
start_libvirt() {
    if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm || true; fi
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
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
