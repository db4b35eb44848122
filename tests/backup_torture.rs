//! Torture test of the backup engine on disk images, through `skiff repo` (a real
//! process): random writes of every size, a backup per round, every point restored
//! byte for byte, points deleted and collected, bits flipped in stored chunks, and a
//! backup killed half-way.

mod common;
use common::BIN;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHUNK: usize = 64 * 1024;

fn repo(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("repo")
        .args(args)
        .env("SKIFF_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn backup(r: &Path, img: &Path) -> String {
    let out = ok(repo(&[
        "backup",
        "--repo",
        r.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
        "--series",
        "disk",
    ]));
    out.lines().last().unwrap().trim().to_string()
}

fn restore(r: &Path, point: &str, out: &Path) -> std::process::Output {
    repo(&[
        "restore",
        "--repo",
        r.to_str().unwrap(),
        "--point",
        point,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn random_writes_backups_restores_deletes_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("repo");
    let img = dir.path().join("disk.img");
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
    // 24 MiB: a third zero, a third random, a third text.
    let size = 24 << 20;
    let mut data = vec![0u8; size];
    rng.fill(&mut data[8 << 20..16 << 20]);
    for (i, b) in data[16 << 20..].iter_mut().enumerate() {
        *b = b"the quick brown fox jumps over the lazy dog\n"[i % 44];
    }
    let mut copies = vec![];
    let mut points = vec![];
    // A block only point `marked` holds: its chunk is ours to damage later.
    let marked = 3;
    let marked_offset = 5 * CHUNK;
    let mut marked_block = vec![0u8; CHUNK];
    for round in 0..8 {
        for _ in 0..rng.gen_range(1..12) {
            let len = match rng.gen_range(0..4) {
                0 => rng.gen_range(1..16),
                1 => rng.gen_range(16..8192),
                2 => rng.gen_range(8192..(1 << 20)),
                _ => rng.gen_range(1 << 20..(4 << 20)),
            };
            let off = rng.gen_range(0..size - len);
            match rng.gen_range(0..4) {
                0 => data[off..off + len].fill(0),
                1 => {
                    // Rewrite identical data.
                    let same = data[off..off + len].to_vec();
                    data[off..off + len].copy_from_slice(&same);
                }
                _ => rng.fill(&mut data[off..off + len]),
            }
        }
        if round == marked {
            rng.fill(&mut marked_block[..]);
            data[marked_offset..marked_offset + CHUNK].copy_from_slice(&marked_block);
        }
        if round == marked + 1 {
            data[marked_offset..marked_offset + CHUNK].fill(1);
        }
        std::fs::write(&img, &data).unwrap();
        points.push(backup(&r, &img));
        copies.push(data.clone());
    }
    let listed = ok(repo(&["list", "--repo", r.to_str().unwrap()]));
    assert_eq!(listed.lines().count(), 8);

    let check = |i: usize| {
        let out = dir.path().join(format!("out-{i}.img"));
        ok(restore(&r, &points[i], &out));
        assert!(
            std::fs::read(&out).unwrap() == copies[i],
            "point {i} differs"
        );
        std::fs::remove_file(&out).unwrap();
    };
    (0..8).for_each(check);

    // Delete some points; collect; the others still restore exactly.
    for i in [0, 2, 6] {
        ok(repo(&[
            "delete",
            "--repo",
            r.to_str().unwrap(),
            "--point",
            &points[i],
        ]));
    }
    let gc = ok(repo(&[
        "gc",
        "--repo",
        r.to_str().unwrap(),
        "--safety-secs",
        "0",
    ]));
    assert!(
        !gc.starts_with("removed 0 "),
        "deleted points freed chunks: {gc}"
    );
    for i in [1, 3, 4, 5, 7] {
        check(i);
    }
    ok(repo(&["verify", "--repo", r.to_str().unwrap()]));

    // Flip a bit in the chunk only the marked point holds: verify names exactly that
    // point, and restoring it is refused while the others still restore.
    let h = blake3::hash(&marked_block).to_hex().to_string();
    let chunk = r.join("chunks").join(&h[..2]).join(&h);
    let mut bytes = std::fs::read(&chunk).expect("the marked chunk is stored");
    let n = bytes.len();
    bytes[n - 10] ^= 0x20;
    std::fs::write(&chunk, bytes).unwrap();
    let v = repo(&["verify", "--repo", r.to_str().unwrap()]);
    assert!(!v.status.success(), "verify must fail");
    let out = String::from_utf8_lossy(&v.stdout).into_owned();
    let damaged: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("damaged point "))
        .collect();
    assert_eq!(damaged, [points[marked].as_str()], "{out}");
    assert!(out.contains(&format!("damaged chunk {h}")));
    let bad_out = dir.path().join("bad.img");
    let refused = restore(&r, &points[marked], &bad_out);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("damaged"));
    assert!(!bad_out.exists(), "nothing is written from damaged data");
    check(7);
}

#[test]
fn a_backup_killed_half_way_leaves_the_repository_clean() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("repo");
    let img = dir.path().join("disk.img");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut data = vec![0u8; 256 << 20];
    rng.fill(&mut data[..]);
    std::fs::write(&img, &data).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "repo",
            "backup",
            "--repo",
            r.to_str().unwrap(),
            "--image",
            img.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some chunks are on disk, while the backup still runs: the kill must
    // land mid-backup, or the test proves nothing.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let chunks = std::fs::read_dir(r.join("chunks"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it could be interrupted"
        );
        if chunks > 20 {
            break;
        }
        assert!(std::time::Instant::now() < until, "no progress seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever was written is consistent: verify passes and no partial point shows.
    ok(repo(&["verify", "--repo", r.to_str().unwrap()]));
    let before = ok(repo(&["list", "--repo", r.to_str().unwrap()]))
        .lines()
        .count();
    assert_eq!(before, 0, "the killed backup left no point");
    // The next backup succeeds and restores exactly.
    let p = backup(&r, &img);
    let out = dir.path().join("out.img");
    ok(restore(&r, &p, &out));
    assert!(std::fs::read(&out).unwrap() == data);
    ok(repo(&["verify", "--repo", r.to_str().unwrap()]));
    // Leftover temporary files of the killed run go with gc.
    ok(repo(&[
        "gc",
        "--repo",
        r.to_str().unwrap(),
        "--safety-secs",
        "0",
    ]));
}

#[test]
fn an_incremental_from_a_qemu_map_reads_only_the_changed_extents() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("repo");
    let base = dir.path().join("base.raw");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut data = vec![0u8; 16 << 20];
    rng.fill(&mut data[..8 << 20]);
    std::fs::write(&base, &data).unwrap();
    backup(&r, &base);
    // The shape of a QEMU incremental backup: an overlay on the old disk that holds
    // exactly the written clusters.
    let top = dir.path().join("inc.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&top)
        .status()
        .unwrap();
    assert!(st.success());
    for cmd in [
        "write -P 0x55 100k 4k",
        "write -P 0x66 9m 1",
        "write -z 2m 64k",
    ] {
        let st = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", cmd])
            .arg(&top)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    let map = Command::new("qemu-img")
        .args(["map", "--output=json"])
        .arg(&top)
        .output()
        .unwrap();
    assert!(map.status.success());
    let map_file = dir.path().join("map.json");
    std::fs::write(&map_file, &map.stdout).unwrap();
    let now = dir.path().join("now.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&top)
        .arg(&now)
        .status()
        .unwrap();
    assert!(st.success());
    let out = repo(&[
        "backup",
        "--repo",
        r.to_str().unwrap(),
        "--image",
        now.to_str().unwrap(),
        "--series",
        "disk",
        "--changed-map",
        map_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let point = ok(out).lines().last().unwrap().trim().to_string();
    // Three writes touch at most five 64 KiB chunks (qcow2 clusters are 64 KiB too).
    let read: u64 = stderr
        .split("read ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("read bytes reported");
    assert!(read <= 5 * 65536, "read {read} bytes: {stderr}");
    let restored = dir.path().join("restored.raw");
    ok(restore(&r, &point, &restored));
    assert!(std::fs::read(&restored).unwrap() == std::fs::read(&now).unwrap());
}
