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
    need_pkgs build-essential pkg-config ca-certificates
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
