#!/usr/bin/env bash
# Dashboard page times with 500 VMs in the store, written to docs/benchmarks.md:
# server time per page as skiff logs it, beside the JSON API's VM list over the same
# VMs and /health. Needs no root and no hypervisor.
# Usage: bash scripts/bench/dashboard.sh [rounds per page]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT_DIR"

ROUNDS=${1:-30}
need_build_deps
say "building skiff and the benchmark (release)"
cargo build --release --locked --bin skiff --example ui_bench
OUT=$(target/release/examples/ui_bench target/release/skiff "$ROUNDS")
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
TABLE=$(cat <<MD
<!-- dashboard-bench:start -->
## Dashboard (issue 6)

\`bash scripts/bench/dashboard.sh $ROUNDS\` — release build, $(nproc) cores ($CPU), measured
$(date -u +%Y-%m-%d). The store holds 500 VMs (one NIC, one tag, one security group
each), 1,000 finished jobs, 500 backups and 20 security groups of 10 rules, all in the
signed-in user's project. Each page is requested $ROUNDS times after 3 warm-up requests.
Server time is what skiff logs for the request (routing, session, service calls,
template rendering, compression); the client column adds loopback and parsing.
Target: no page above 50 ms of server time.

$OUT

- Peers in the same run: the JSON API's VM list of the same 500 VMs (the same service
  call as the dashboard's list, serialised by serde instead of rendered by askama) and
  \`/health\`, the cost of a request that does nothing.
<!-- dashboard-bench:end -->
MD
)
write_bench_section dashboard "$TABLE"
echo "$TABLE"
