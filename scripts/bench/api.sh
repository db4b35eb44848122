#!/usr/bin/env bash
# Benchmark of the API edge, written to docs/benchmarks.md:
#   - GET /api/v1/projects?limit=100 (100 projects, an unlimited-tier key) at 50
#     connections, next to a trivial actix-web JSON handler in the same run;
#   - the rate limiter's own cost: limiter on (a tier too high to trigger) vs off;
#   - durable writes (PUT /api/v1/projects/{id}) next to a write+fsync loop.
#   - authentication's worst case: a key made by an invited member (its rights are
#     resolved from the member's grants at every request) next to the owner's key.
# Everything runs on loopback; each row is the median of ROUNDS runs.
# Usage: bash scripts/bench/api.sh [seconds-per-run] [rounds]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT_DIR"

DUR=${1:-10}
ROUNDS=${2:-3}
CONNS=50
need_build_deps
need_pkgs wrk
say "building release binaries"
cargo build --release --locked --bin skiff --example peer_json
BIN=target/release/skiff
PEER=target/release/examples/peer_json
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME CONFIG → sets URL; the server runs in the background.
start() {
    local cfg="$WORK/$1.toml" p
    printf '%s\n' "$2" > "$cfg"
    p=$(port)
    SKIFF_LOG=warn SKIFF_COMPUTE__ENABLED=false "$BIN" --config "$cfg" --data-dir "$WORK/data" --listen "127.0.0.1:$p" serve > "$WORK/$1.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/health" >/dev/null 2>&1 && break; sleep 0.1; done
    URL="http://127.0.0.1:$p"
}
stop_last() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }

# wrk_once URL [KEY] [SCRIPT] → "requests/s p99_ms" of one run
wrk_once() {
    local out
    if [ -n "${3:-}" ]; then
        out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s "$3" "$1")
    elif [ -n "${2:-}" ]; then
        out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -H "X-API-Key: $2" "$1")
    else
        out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$1")
    fi
    echo "$out" >> "$WORK/wrk.log"
    local rps p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    [ -z "$non2xx" ] || { echo "wrk saw $non2xx non-2xx answers" >&2; exit 1; }
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    echo "$rps $p99"
}

# wrk_run URL [KEY] [SCRIPT] → medians of ROUNDS runs: "requests/s p99_ms"
wrk_run() {
    local runs=()
    for _ in $(seq "$ROUNDS"); do runs+=("$(wrk_once "$@")"); done
    printf '%s\n' "${runs[@]}" | python3 -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
print(f"{statistics.median(r[0] for r in rows):.2f} {statistics.median(r[1] for r in rows):.2f}")'
}

say "preparing a data directory with 100 projects"
INIT=$("$BIN" --data-dir "$WORK/data" init --json)
KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$INIT")
KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key_id"])' <<<"$INIT")
"$BIN" --data-dir "$WORK/data" admin set-tier "$KEY_ID" unlimited >/dev/null
start setup ""
for i in $(seq 1 99); do
    curl -sf -X POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
        -d "{\"name\":\"project-$i\",\"description\":\"benchmark project $i\"}" "$URL/api/v1/projects" >/dev/null
done
TOTAL=$(curl -sf -H "X-API-Key: $KEY" "$URL/api/v1/projects?limit=100" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"], len(d["data"]))')
[ "$TOTAL" = "100 100" ] || { echo "expected 100 projects, got $TOTAL" >&2; exit 1; }
# An invited member (Admin) accepts in the dashboard and makes a key there.
ADMIN_ROLE=$(curl -sf -H "X-API-Key: $KEY" "$URL/api/v1/roles" | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin)["data"] if r["slug"]=="admin"][0])')
INVITE=$(curl -sf -X POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@example.org\",\"role_id\":\"$ADMIN_ROLE\"}" "$URL/api/v1/members" \
    | python3 -c 'import json,sys; u=json.load(sys.stdin)["data"]["invitation_url"]; print(u[u.index("/ui/invite/"):])')
JAR="$WORK/cookies"
csrf() { curl -sf -b "$JAR" -c "$JAR" "$URL$1" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | cut -d'"' -f4; }
T=$(csrf "$INVITE")
curl -sf -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "csrf=$T" \
    --data-urlencode "password=bench-password-1" --data-urlencode "password2=bench-password-1" "$URL$INVITE"
T=$(csrf /ui/api-keys)
curl -sf -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "csrf=$T" --data-urlencode "name=member-key" \
    --data-urlencode "role_id=$ADMIN_ROLE" "$URL/ui/api-keys"
MKEY=$(curl -sf -b "$JAR" -c "$JAR" "$URL/ui/api-keys" | grep -o 'id="new-secret">raff_[0-9a-f]*' | cut -d'>' -f2)
MKEY_ID=$(curl -sf -H "X-API-Key: $KEY" "$URL/api/v1/api-keys?limit=100" | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin)["data"] if k["name"]=="member-key"][0])')
[ -n "$MKEY" ] || { echo "the member's key was not made" >&2; exit 1; }
stop_last
"$BIN" --data-dir "$WORK/data" admin set-tier "$MKEY_ID" unlimited >/dev/null

# For the limiter rows the same key gets the "high" tier, with figures out of reach.
HUGE='[rate_limit.standard]
per_second = 1000000000
burst = 1000000000
[rate_limit.high]
per_second = 1000000000
burst = 1000000000'

"$BIN" --data-dir "$WORK/data" admin set-tier "$KEY_ID" unlimited >/dev/null
start main ""
PROJECT=$(curl -sf -H "X-API-Key: $KEY" "$URL/api/v1/projects?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
# Writes: every answer waits for the datastore flush (acknowledged means durable);
# concurrent requests share one fsync.
cat > "$WORK/patch.lua" <<LUA
wrk.method = "PUT"
wrk.body = '{"description":"updated by the benchmark"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$KEY"
LUA
say "skiff, unlimited key: PUT /api/v1/projects/{id} (a durable write per request)"
read -r W_RPS W_P99 < <(wrk_run "$URL/api/v1/projects/$PROJECT" "" "$WORK/patch.lua")
say "skiff, unlimited key: GET /api/v1/projects?limit=100"
read -r S_RPS S_P99 < <(wrk_run "$URL/api/v1/projects?limit=100" "$KEY")
say "skiff, unlimited key: GET /api/v1/permissions (no store read)"
read -r PERM_RPS PERM_P99 < <(wrk_run "$URL/api/v1/permissions" "$KEY")
say "skiff, a member's key: GET /api/v1/permissions (rights resolved from the member's grants)"
read -r MEM_RPS MEM_P99 < <(wrk_run "$URL/api/v1/permissions" "$MKEY")
stop_last

P=$(port)
"$PEER" "127.0.0.1:$P" > "$WORK/peer.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P/json" >/dev/null 2>&1 && break; sleep 0.1; done
say "peer: trivial actix-web JSON handler"
read -r PEER_RPS PEER_P99 < <(wrk_run "http://127.0.0.1:$P/json")
stop_last

"$BIN" --data-dir "$WORK/data" admin set-tier "$KEY_ID" high >/dev/null
start limiter_on "$HUGE"
say "limiter on (high tier, limits out of reach): GET /api/v1/permissions"
read -r ON_RPS ON_P99 < <(wrk_run "$URL/api/v1/permissions" "$KEY")
stop_last
start limiter_off "$HUGE
[rate_limit]
enabled = false"
say "limiter off: GET /api/v1/permissions"
read -r OFF_RPS OFF_P99 < <(wrk_run "$URL/api/v1/permissions" "$KEY")
stop_last
"$BIN" --data-dir "$WORK/data" admin set-tier "$KEY_ID" unlimited >/dev/null

# The physical limit for durable writes one at a time: write + fsync of a small record
# on the same file system, in a loop, for the same time.
say "peer: write + fsync loop on the data directory's file system"
FSYNC_RPS=$(python3 - "$WORK" "$DUR" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
n, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    os.pwrite(fd, b"x" * 512, (n % 1024) * 512)
    os.fsync(fd)
    n += 1
print(f"{n / float(sys.argv[2]):.2f}")
PY
)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
CPU=$(awk -F: '/model name/ {gsub(/^ +/,"",$2); print $2; exit}' /proc/cpuinfo)
TABLE=$(cat <<MD
<!-- api-bench:start -->
## API edge (issue 2)

\`bash scripts/bench/api.sh $DUR $ROUNDS\` — wrk, 2 threads, $CONNS connections, ${DUR} s per run, median of $ROUNDS runs per row, everything
on loopback on one $(nproc)-core machine ($CPU), wrk sharing the cores with the server.
Release build. Measured $(date -u +%Y-%m-%d).

| what | requests/s | p99 latency (ms) | vs peer |
|---|---:|---:|---:|
| peer: trivial actix-web JSON handler (\`examples/peer_json.rs\`) | $PEER_RPS | $PEER_P99 | 1.00 |
| skiff \`GET /api/v1/projects?limit=100\`, 100 projects, unlimited key | $S_RPS | $S_P99 | $(ratio "$S_RPS" "$PEER_RPS") |
| skiff \`GET /api/v1/permissions\` (auth, no list read), unlimited key | $PERM_RPS | $PERM_P99 | $(ratio "$PERM_RPS" "$PEER_RPS") |
| same, a key made by an invited member (rights resolved from the member's grants at every request: worst case of auth) | $MEM_RPS | $MEM_P99 | $(ratio "$MEM_RPS" "$PEER_RPS") |

Durable writes, same run: every answer to a change waits for the datastore's flush
(concurrent requests share one fsync), so the limit is the disk, not the CPU:

| what | requests/s | p99 latency (ms) | vs one-at-a-time fsync |
|---|---:|---:|---:|
| physical limit: write + fsync of 512 bytes in a loop, one writer | $FSYNC_RPS | – | 1.00 |
| skiff \`PUT /api/v1/projects/{id}\` (a flushed change per request), 50 connections | $W_RPS | $W_P99 | $(ratio "$W_RPS" "$FSYNC_RPS") |

Rate limiter cost, same run, same route (\`GET /api/v1/permissions\`):

| limiter | requests/s | p99 latency (ms) | on / off |
|---|---:|---:|---:|
| off (\`rate_limit.enabled = false\`) | $OFF_RPS | $OFF_P99 | 1.00 |
| on, high tier with limits out of reach | $ON_RPS | $ON_P99 | $(ratio "$ON_RPS" "$OFF_RPS") |
<!-- api-bench:end -->
MD
)
mkdir -p docs
[ -f docs/benchmarks.md ] || printf '# Benchmarks\n\nEvery table here is written by the script named above it; rerun it to refresh.\n\n' > docs/benchmarks.md
write_bench_section api "$TABLE"
echo "$TABLE"
