#!/usr/bin/env bash
# Security-group data-plane benchmark, written to docs/benchmarks.md: per-packet cost
# through BPF_PROG_TEST_RUN for 1, 100 and 10,000 rules, and packets/s through veth
# pairs between namespaces this run creates (no filter, skiff, nftables with the same
# policy as linear rules and as a set). Needs root.
# Usage: bash scripts/bench/firewall.sh [seconds per veth row]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT_DIR"

SECS=${1:-3}
need_build_deps
need_pkgs nftables iproute2
say "building the benchmark (release)"
cargo build --release --locked --example fw_bench
OUT=$(target/release/examples/fw_bench "$SECS")
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
TABLE=$(cat <<MD
<!-- firewall-bench:start -->
## Security groups (issues 5, 13)

\`bash scripts/bench/firewall.sh $SECS\` — release build, kernel $(uname -r), $(nproc) cores ($CPU),
measured $(date -u +%Y-%m-%d). Rules are inbound TCP rules, each for its own /32 and port;
the packets measured are allowed by the last one (the worst case for a linear scan).
Targets: cost at 10,000 rules within 10 % of the cost at 1 rule; skiff at ≥ 90 % of
the unfiltered packet rate at 10,000 rules.

$OUT

- "Decided by the rules": a TCP ACK with no tracked connection, so every run does the
  whole search (remote prefix, then protocol and port). "Tracked connection": the
  same after a SYN opened the flow (one conntrack lookup). Costs include
  BPF_PROG_TEST_RUN's own overhead (the "NIC without groups" row: parsing and
  anti-spoofing only).
- "skiff (classic TC)": the same programs attached through a clsact qdisc and a
  direct-action filter, as on kernels without TCX (\`[network.firewall] attach\`).
- veth rows: one sender namespace blasting 256 flows with AF_PACKET through a router
  namespace to the "VM" namespace; skiff runs on the VM's tap (tc egress), nftables in a
  netdev ingress chain on the router's inbound veth (stateless, like the rules alone).
  The VM namespace drops the packets (no RSTs back), so only the inbound path is
  measured. "Packets of tracked connections" is what a stateful firewall sees for
  established traffic; "every packet decided by the rules" is the worst case (a flood of
  packets that open nothing). The sender is pinned to one core, where the whole receive
  path runs; the configurations are interleaved over 5 rounds and the median is shown,
  because single rounds vary by up to ±15 % on these 2 shared cores (the rounds column).
<!-- firewall-bench:end -->
MD
)
write_bench_section firewall "$TABLE"
echo "$TABLE"
