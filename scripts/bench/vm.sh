#!/usr/bin/env bash
# Benchmark of VM creation, written to docs/benchmarks.md:
#   - time from POST /api/v1/vms to "active" against defining and starting the same
#     domain XML directly through libvirt (same overlay + seed preparation, same
#     readiness signal: the guest's "SKIFF-GUEST ready" on the serial console);
#   - K VMs created at once: time until all are active.
# Runs as root, entirely inside the test network namespace (scripts/lib.sh).
# Usage: bash scripts/bench/vm.sh [rounds]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT_DIR"

ROUNDS=${1:-5}
need_build_deps
need_virt_host
need_pkgs curl jq bc
TEMPLATE=$(bash scripts/test-template.sh | tail -n 1)
say "building release binary"
cargo build --release --locked --bin skiff
start_test_host
WORK=$(mktemp -d /var/lib/skiff-test/bench-XXXXXX)
chmod 0755 "$WORK"
SK_PID=""
cleanup() {
    [ -n "$SK_PID" ] && kill "$SK_PID" 2>/dev/null || true
    stop_test_host
    rm -rf "$WORK"
}
trap cleanup EXIT
NS="nsenter --net=/run/netns/$SKT_NETNS"
TID=5ac21891-32e6-41ce-8a93-b5d6ab708b0d
KEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT bench"

cat > "$WORK/skiff.toml" <<TOML
[rate_limit.standard]
per_second = 100000
burst = 100000
[compute]
libvirt_uri = "$SKT_LIBVIRT_URI"
boot_timeout_secs = 300
[network.public]
bridge = "$SKT_BRIDGE"
cidr = "10.231.0.0/24"
gateway = "10.231.0.1"
[[catalog.templates]]
id = "$TID"
name = "skiff-test"
version = "1"
cpu = 1
ram = 1
storage = 1
region = "us-east"
image = "$TEMPLATE"
TOML
INIT=$(target/release/skiff --config "$WORK/skiff.toml" --data-dir "$WORK/data" init --json)
API_KEY=$(jq -r .api_key <<<"$INIT")
PROJECT=$(jq -r .project_id <<<"$INIT")
$NS env SKIFF_LOG=warn target/release/skiff --config "$WORK/skiff.toml" --data-dir "$WORK/data" \
    --listen 127.0.0.1:18480 serve > "$WORK/skiff.out" 2>&1 &
SK_PID=$!
for _ in $(seq 100); do $NS curl -sf http://127.0.0.1:18480/health >/dev/null 2>&1 && break; sleep 0.1; done
api() { $NS curl -sf -H "X-API-Key: $API_KEY" -H "X-Project-ID: $PROJECT" -H 'Content-Type: application/json' "$@"; }
now() { date +%s.%N; }
# create NAME [EXTRA-JSON-FIELDS]
create() {
    api -X POST -d "{\"name\":\"$1\",\"template_id\":\"$TID\",\"pricing_id\":1,\"region\":\"us-east\",\"ssh_keys\":[\"$KEY\"]${2:+,$2}}" \
        http://127.0.0.1:18480/api/v1/vms | jq -r .data.id
}
status() { api "http://127.0.0.1:18480/api/v1/vms/$1" | jq -r .data.status; }
wait_active() {
    local s
    while :; do
        s=$(status "$1")
        [ "$s" = active ] && return 0
        [ "$s" = failure ] && { echo "VM $1 failed" >&2; return 1; }
        sleep 0.1
    done
}
idle() {
    while api "http://127.0.0.1:18480/api/skiff/v1/jobs" | jq -e '[.data[] | select(.status=="queued" or .status=="running")] | length > 0' >/dev/null; do sleep 0.2; done
}
delete() { api -X DELETE "http://127.0.0.1:18480/api/v1/vms/$1" >/dev/null; }

say "skiff: POST /api/v1/vms → active, $ROUNDS rounds, with and without a VPC"
SKIFF_T=()
VPC_T=()
XML_SRC=""
for i in $(seq "$ROUNDS"); do
    # The contract's default: a VPC of its own (a bridge and a router namespace more).
    t0=$(now); id=$(create "bench-vpc-$i"); wait_active "$id"; t1=$(now)
    VPC_T+=("$(echo "$t1 - $t0" | bc)")
    delete "$id"; idle
    t0=$(now); id=$(create "bench-$i" '"skip_vpc":true'); wait_active "$id"; t1=$(now)
    SKIFF_T+=("$(echo "$t1 - $t0" | bc)")
    if [ -z "$XML_SRC" ]; then
        virsh -c "$SKT_LIBVIRT_URI" dumpxml "skiff-vm-$id" > "$WORK/domain.xml"
        cp "$WORK/data/vms/$id/seed.img" "$WORK/seed.img"
        XML_SRC="$id"
    fi
    delete "$id"; idle
done

say "libvirt directly: overlay + seed + define + start → ready marker, $ROUNDS rounds"
DIRECT_T=()
for i in $(seq "$ROUNDS"); do
    d="$WORK/direct-$i"; mkdir -p "$d"; chmod 0755 "$d"
    uuid=$(cat /proc/sys/kernel/random/uuid)
    # Same XML as skiff's first VM (deleted by now: its MAC and tap name are free).
    sed -e "s|skiff-vm-$XML_SRC|bench-direct-$i|g" -e "s|<uuid>.*</uuid>|<uuid>$uuid</uuid>|" \
        -e "s|$WORK/data/vms/$XML_SRC|$d|g" "$WORK/domain.xml" > "$d/domain.xml"
    t0=$(now)
    qemu-img create -q -f qcow2 -F qcow2 -b "$TEMPLATE" "$d/disk.qcow2" 10G
    cp "$WORK/seed.img" "$d/seed.img"
    virsh -c "$SKT_LIBVIRT_URI" define "$d/domain.xml" >/dev/null
    virsh -c "$SKT_LIBVIRT_URI" start "bench-direct-$i" >/dev/null
    until grep -qa "SKIFF-GUEST ready" "$d/console.log" 2>/dev/null; do sleep 0.1; done
    t1=$(now)
    DIRECT_T+=("$(echo "$t1 - $t0" | bc)")
    virsh -c "$SKT_LIBVIRT_URI" destroy "bench-direct-$i" >/dev/null
    virsh -c "$SKT_LIBVIRT_URI" undefine "bench-direct-$i" >/dev/null
done

CONC_ROWS=""
for K in 1 2 4 8; do
    say "$K creates at once"
    ids=(); t0=$(now)
    for j in $(seq "$K"); do ids+=("$(create "conc-$K-$j")"); done
    ok=0
    for id in "${ids[@]}"; do wait_active "$id" && ok=$((ok + 1)); done
    t1=$(now)
    total=$(echo "$t1 - $t0" | bc)
    CONC_ROWS+="| $K | $ok of $K | $(printf '%.1f' "$total") | $(printf '%.1f' "$(echo "$total / $K" | bc -l)") |"$'\n'
    for id in "${ids[@]}"; do delete "$id"; done
    idle
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "%.2f %.2f %.2f\n", a[int((NR+1)/2)], s/NR, a[NR]}'; }
read -r S_MED S_AVG S_MAX < <(stats "${SKIFF_T[@]}")
read -r D_MED D_AVG D_MAX < <(stats "${DIRECT_T[@]}")
read -r V_MED V_AVG V_MAX < <(stats "${VPC_T[@]}")
OVER=$(python3 -c "print(f'{($S_MED/$D_MED-1)*100:+.0f} %')")
ACCEL=$(grep -q -E 'vmx|svm' /proc/cpuinfo && echo KVM || echo "TCG (no VMX/SVM here)")
TABLE=$(cat <<MD
<!-- vm-bench:start -->
## VM creation (issue 3)

\`bash scripts/bench/vm.sh $ROUNDS\` — $ROUNDS rounds each, one guest at a time, the test template
(Debian cloud kernel + busybox, 1 vCPU, 1 GiB), $ACCEL, $(nproc) cores, measured $(date -u +%Y-%m-%d).
Both paths make a qcow2 overlay and a NoCloud seed, define and start the domain, and stop
the clock when the guest prints its ready line; skiff's also includes the API call, the
job queue and status polling (100 ms).

| path | median s | mean s | max s |
|---|---:|---:|---:|
| libvirt directly (virsh define + start) | $D_MED | $D_AVG | $D_MAX |
| skiff \`POST /api/v1/vms\` → \`active\`, public NIC only (\`skip_vpc\`) | $S_MED | $S_AVG | $S_MAX |
| skiff, the contract's default: a VPC of its own too (bridge, router namespace, second NIC) | $V_MED | $V_AVG | $V_MAX |

Overhead of skiff over libvirt (medians, same domain: one NIC): **$OVER** (target ≤ +10 %).

Concurrent creates (the contract's default, each with a VPC of its own; all posted at
once, clock stops when the last is \`active\`):

| VMs | reached active | total s | s per VM |
|---:|---:|---:|---:|
${CONC_ROWS}<!-- vm-bench:end -->
MD
)
write_bench_section vm "$TABLE"
echo "$TABLE"
