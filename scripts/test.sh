#!/usr/bin/env bash
# Runs every test of skiff: formatting, lints, unit, integration, system and contract
# tests. Installs what it needs first (as root on a fresh Debian machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

need_build_deps
need_test_tools
if [ "$(id -u)" -eq 0 ]; then
    need_virt_host
    need_browser_tools
    need_pkgs debootstrap lintian dpkg-dev curl openssh-client
    say "building the test guest template"
    SKT_TEMPLATE=$(bash "$ROOT_DIR/scripts/test-template.sh" | tail -n 1)
    export SKT_TEMPLATE
    say "building the Debian 12 cloud image (cached after the first build)"
    SKT_DEBIAN_IMAGE=$(bash "$ROOT_DIR/scripts/build-debian-image.sh" | tail -n 1)
    export SKT_DEBIAN_IMAGE
    # A libvirtd outside the tests (the appliance's, or a stand-in started here with a
    # paused guest) must come through the run untouched: the tests stop only their own.
    start_bystander
    say "starting the test host (libvirtd in netns)"
    start_test_host
    trap 'rc=$?; stop_test_host; check_bystander "$rc"' EXIT
else
    echo "!!!!!!!! SKIP: not root: system tests (libvirt, QEMU) will be skipped !!!!!!!!" >&2
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

run_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --locked --no-fail-fast --failure-output final "$@"
    else
        cargo test --locked --no-fail-fast "$@"
    fi
}

say "tests"
status=0
run_tests || status=$?
# The data plane attaches through TCX on this kernel; the same netns tests again with
# classic TC (clsact + direct-action filters), as on kernels without TCX.
say "firewall netns tests with classic TC"
SKIFF_TEST_FW_ATTACH=tc run_tests --test firewall_netns || status=$?
exit "$status"
