#!/usr/bin/env bash
# Backup benchmark, written to docs/benchmarks.md. One image (1/3 zero, 1/3 random,
# 1/3 text), then 1 % of its 64 KiB blocks rewritten with one 4 KiB random write each,
# made the way QEMU records it: into a qcow2 overlay whose allocated clusters are the
# dirty blocks (skiff reads those through `--changed-map`; the peers get the new raw
# image and find the changes themselves). skiff, restic and borg (zstd,1) and
# `qemu-img convert -c` on the same data, in one run.
# Usage: bash scripts/bench/backup.sh [image MiB]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT_DIR"

MIB=${1:-1024}
need_build_deps
need_pkgs restic borgbackup zstd python3
say "building release binaries"
cargo build --release --locked --bin skiff --example hash_limit
SK="$ROOT_DIR/target/release/skiff"
W=$(mktemp -d /var/tmp/skiff-bench-backup.XXXXXX)
trap 'rm -rf "$W"' EXIT
IMG="$W/disk.img"
third=$((MIB / 3))
say "making a ${MIB} MiB image"
{
    head -c $((third << 20)) /dev/zero
    head -c $((third << 20)) /dev/urandom
    # yes ends on SIGPIPE when head has enough; that is not a failure.
    { yes "the quick brown fox jumps over the lazy dog, again and again, line after line" || true; } | head -c $(((MIB - 2 * third) << 20))
} > "$IMG"
sync
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
du_b() { du -sb "$1" | cut -f1; }
mb() { python3 -c "print(f'{$1/1048576:.1f}')"; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
restic init -q -r "$W/restic" >/dev/null
borg init -e none "$W/borg" >/dev/null 2>&1

say "full backups"
t0=$(now); "$SK" repo backup --repo "$W/skiff" --image "$IMG" --series disk > "$W/p0" 2>/dev/null; t1=$(now)
S_FULL=$(secs "$t0" "$t1"); S_FULL_B=$(du_b "$W/skiff")
t0=$(now); restic -q -r "$W/restic" backup "$IMG" >/dev/null; t1=$(now)
R_FULL=$(secs "$t0" "$t1"); R_FULL_B=$(du_b "$W/restic")
t0=$(now); borg create --compression zstd,1 "$W/borg::a" "$IMG"; t1=$(now)
B_FULL=$(secs "$t0" "$t1"); B_FULL_B=$(du_b "$W/borg")
t0=$(now); qemu-img convert -c -O qcow2 "$IMG" "$W/full.qcow2"; t1=$(now)
Q_FULL=$(secs "$t0" "$t1"); Q_FULL_B=$(du_b "$W/full.qcow2")

say "1 % of the 64 KiB blocks get a 4 KiB random write"
head -c 4096 /dev/urandom > "$W/rand4k"
qemu-img create -q -f qcow2 -F raw -b "$IMG" "$W/top.qcow2"
BLOCKS=$((MIB * 16)); N=$((BLOCKS / 100))
python3 - "$BLOCKS" "$N" > "$W/writes" <<'PY'
import random, sys
blocks, n = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
for b in sorted(random.sample(range(blocks), n)):
    print(f"write -q -s RAND {b*65536 + random.randrange(0, 65536 - 4096, 512)} 4k")
PY
sed -i "s|RAND|$W/rand4k|" "$W/writes"
args=(); while read -r l; do args+=(-c "$l"); done < "$W/writes"
qemu-io -f qcow2 "${args[@]}" "$W/top.qcow2" >/dev/null
qemu-img map --output=json "$W/top.qcow2" > "$W/map.json"
qemu-img convert -O raw "$W/top.qcow2" "$W/new.img"
mv "$W/new.img" "$IMG"; sync
TOUCHED=$(python3 -c "import json;print(sum(e['length'] for e in json.load(open('$W/map.json')) if e['depth']==0 and e['present']))")
# The compressed size of the touched 64 KiB blocks: the floor an incremental can reach.
python3 - "$IMG" "$W/map.json" "$W/touched.bin" <<'PY'
import json, sys
img, m, out = sys.argv[1:]
with open(img, "rb") as f, open(out, "wb") as o:
    for e in json.load(open(m)):
        if e["depth"] == 0 and e["present"]:
            f.seek(e["start"]); o.write(f.read(e["length"]))
PY
FLOOR=$(zstd -1 -q -c "$W/touched.bin" | wc -c)

say "incremental backups"
t0=$(now); "$SK" repo backup --repo "$W/skiff" --image "$IMG" --series disk --changed-map "$W/map.json" > "$W/p1" 2>"$W/p1.err"; t1=$(now)
S_INC=$(secs "$t0" "$t1"); S_INC_B=$(( $(du_b "$W/skiff") - S_FULL_B ))
S_READ=$(sed -n 's/.*read \([0-9]*\) B.*/\1/p' "$W/p1.err")
t0=$(now); restic -q -r "$W/restic" backup "$IMG" >/dev/null; t1=$(now)
R_INC=$(secs "$t0" "$t1"); R_INC_B=$(( $(du_b "$W/restic") - R_FULL_B ))
t0=$(now); borg create --compression zstd,1 "$W/borg::b" "$IMG"; t1=$(now)
B_INC=$(secs "$t0" "$t1"); B_INC_B=$(( $(du_b "$W/borg") - B_FULL_B ))
IMG_B=$(stat -c %s "$IMG")

say "restores of the incremental point"
P1=$(tail -n 1 "$W/p1")
t0=$(now); "$SK" repo restore --repo "$W/skiff" --point "$P1" --out "$W/r-skiff.img" 2>/dev/null; t1=$(now)
S_RES=$(secs "$t0" "$t1")
cmp "$W/r-skiff.img" "$IMG"
rm -f "$W/r-skiff.img"
t0=$(now); restic -q -r "$W/restic" restore latest --target "$W/r-restic" >/dev/null; t1=$(now)
R_RES=$(secs "$t0" "$t1"); rm -rf "$W/r-restic"
mkdir -p "$W/r-borg"; t0=$(now); (cd "$W/r-borg" && borg extract "$W/borg::b"); t1=$(now)
B_RES=$(secs "$t0" "$t1"); rm -rf "$W/r-borg"

say "single-core limits"
read -r _ BLAKE _ ZSTD1 _ _ < <("$ROOT_DIR/target/release/examples/hash_limit" "$IMG")
S_MBS=$(python3 -c "print(f'{$IMG_B/1e6/$S_FULL:.0f}')")
# One core hashing then compressing every byte: 1/(1/BLAKE3 + 1/zstd); skiff runs that
# pipeline on every core.
PIPE=$(python3 -c "print(f'{1/(1/$BLAKE + 1/$ZSTD1):.0f}')")
FRACTION=$(python3 -c "print(f'{$S_MBS/($PIPE*$(nproc)):.2f}')")

ratio() { python3 -c "print(f'{$1/$2:.1f}')"; }
TABLE=$(cat <<MD
<!-- backup-bench:start -->
## Backups (issue 4)

\`bash scripts/bench/backup.sh $MIB\` — a ${MIB} MiB image (1/3 zero, 1/3 random, 1/3 text), then 1 % of
its 64 KiB blocks ($N) rewritten with one 4 KiB random write each, recorded in a qcow2
overlay as QEMU's dirty bitmap would; $(nproc) cores, measured $(date -u +%Y-%m-%d). restic and borg
(zstd,1) get the new raw image; skiff gets it plus the changed extents (\`--changed-map\`).

| tool | full s | full stored MiB | incremental s | incremental stored MiB | restore s |
|---|---:|---:|---:|---:|---:|
| skiff \`repo\` | $S_FULL | $(mb "$S_FULL_B") | $S_INC | $(mb "$S_INC_B") | $S_RES |
| restic | $R_FULL | $(mb "$R_FULL_B") | $R_INC | $(mb "$R_INC_B") | $R_RES |
| borg (zstd,1) | $B_FULL | $(mb "$B_FULL_B") | $B_INC | $(mb "$B_INC_B") | $B_RES |
| \`qemu-img convert -c\` | $Q_FULL | $(mb "$Q_FULL_B") | — | — | — |

- Incremental: skiff read $(mb "${S_READ:-0}") MiB of the image (restic and borg read all $(mb "$IMG_B") MiB);
  skiff is $(ratio "$R_INC" "$S_INC")× faster than restic (target ≥ 10×).
- Bytes stored by skiff's incremental: $(mb "$S_INC_B") MiB against $(mb "$FLOOR") MiB, the zstd-1 size of
  the $(mb "$TOUCHED") MiB of blocks the writes touched: $(ratio "$S_INC_B" "$FLOOR")× (target ≤ 1.5×; the index
  blocks that changed are part of it).
- Full backup throughput: skiff $S_MBS MB/s (hashing and compressing on all $(nproc) cores), against
  single-core limits measured in the same run on the same image: BLAKE3 $BLAKE MB/s, zstd -1
  $ZSTD1 MB/s (\`examples/hash_limit.rs\`); one core doing both reaches $PIPE MB/s, so skiff runs at
  $FRACTION of the $(nproc)-core limit (the rest is reading the image and writing chunk files).
  Full backup against restic: $(ratio "$R_FULL" "$S_FULL")× (target > 1×).
<!-- backup-bench:end -->
MD
)
write_bench_section backup "$TABLE"
echo "$TABLE"
