//! A repository: series of restore points over one chunk store.
//!
//! ```text
//! repo.json                                  {"format": "skiff-backup", "version": 1}
//! chunks/<2 hex>/<64 hex>                    data and index-block chunks
//! series/<name>/series.json                  {"chunk_size": …}
//! series/<name>/points/<increment>-<id>.json one complete restore point
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::chunk::{hex, write_atomic, ChunkStore, Digest, ZERO};
use super::source::{RawImage, Source};
use super::{io, BackupError};

pub const FORMAT_VERSION: u32 = 1;
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Digests per index block: 32 KiB blocks, stored (and shared) like data chunks.
const BLOCK_ENTRIES: usize = 1024;

#[derive(Serialize, Deserialize)]
struct RepoMeta {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct SeriesMeta {
    chunk_size: u32,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// One restore point. Its index is complete: it restores without any other point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub format: u32,
    pub id: Uuid,
    pub series: String,
    /// Position in the series: 0 is the baseline.
    pub increment: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub image_size: u64,
    pub chunk_size: u32,
    /// Digests (hex) of the index blocks, each listing up to 1024 chunk digests.
    pub blocks: Vec<String>,
    /// Bytes this point added to the store.
    pub stored_bytes: u64,
    /// Bytes read from the image to make it.
    pub read_bytes: u64,
}

/// What a backup did, beside the point itself.
#[derive(Clone, Debug)]
pub struct BackupStats {
    pub point: Point,
    pub chunks: u64,
    pub new_chunks: u64,
    pub zero_chunks: u64,
}

/// The outcome of a verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub checked_points: usize,
    pub checked_chunks: usize,
    pub damaged_points: Vec<Uuid>,
    pub damaged_chunks: Vec<String>,
}

pub struct Repo {
    root: PathBuf,
    chunks: ChunkStore,
}

fn check_series(name: &str) -> Result<(), BackupError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(BackupError::Invalid(format!(
            "series name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )))
    }
}

fn parse_digest(h: &str) -> Result<Digest, BackupError> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(h, &mut d)
        .map_err(|_| BackupError::Format(format!("bad digest {h:?} in a point")))?;
    Ok(d)
}

impl Repo {
    /// Opens a repository, creating it when `dir` is empty or missing.
    pub fn open(dir: &Path) -> Result<Repo, BackupError> {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let meta_path = dir.join("repo.json");
        match fs::read(&meta_path) {
            Ok(bytes) => {
                let m: RepoMeta = serde_json::from_slice(&bytes)
                    .map_err(|e| BackupError::Format(format!("{}: {e}", meta_path.display())))?;
                if m.format != "skiff-backup" || m.version > FORMAT_VERSION {
                    return Err(BackupError::Format(format!(
                        "{} is format {} version {}; this build reads skiff-backup up to {FORMAT_VERSION}",
                        dir.display(),
                        m.format,
                        m.version
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let m = RepoMeta {
                    format: "skiff-backup".into(),
                    version: FORMAT_VERSION,
                };
                let bytes = serde_json::to_vec_pretty(&m)
                    .map_err(|e| BackupError::Format(e.to_string()))?;
                write_atomic(&meta_path, &bytes)?;
            }
            Err(e) => return Err(io(format!("reading {}", meta_path.display()))(e)),
        }
        Ok(Repo {
            root: dir.to_path_buf(),
            chunks: ChunkStore::new(dir.join("chunks")),
        })
    }

    fn series_dir(&self, series: &str) -> PathBuf {
        self.root.join("series").join(series)
    }

    /// The series' chunk size, fixed by its first backup.
    fn chunk_size(&self, series: &str, wanted: Option<u32>) -> Result<u32, BackupError> {
        let path = self.series_dir(series).join("series.json");
        if let Ok(bytes) = fs::read(&path) {
            let m: SeriesMeta = serde_json::from_slice(&bytes)
                .map_err(|e| BackupError::Format(format!("{}: {e}", path.display())))?;
            return Ok(m.chunk_size);
        }
        let size = wanted.unwrap_or(DEFAULT_CHUNK_SIZE);
        if !(4096..=(16 << 20)).contains(&size) || !size.is_power_of_two() {
            return Err(BackupError::Invalid(
                "chunk size must be a power of two from 4 KiB to 16 MiB".into(),
            ));
        }
        fs::create_dir_all(self.series_dir(series).join("points"))
            .map_err(io(format!("creating series {series}")))?;
        let m = SeriesMeta {
            chunk_size: size,
            created_at: chrono::Utc::now(),
        };
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(&m).map_err(|e| BackupError::Format(e.to_string()))?,
        )?;
        Ok(size)
    }

    /// Every complete point, by series and increment.
    pub fn points(&self) -> Result<Vec<Point>, BackupError> {
        let mut out = Vec::new();
        for dir in self.points_dirs() {
            out.extend(read_points(&dir, None)?);
        }
        out.sort_by(|a, b| (&a.series, a.increment).cmp(&(&b.series, b.increment)));
        Ok(out)
    }

    /// The complete points of one series, by increment (only that series is read).
    pub fn series_points(&self, series: &str) -> Result<Vec<Point>, BackupError> {
        check_series(series)?;
        let mut out = read_points(&self.series_dir(series).join("points"), None)?;
        out.sort_by_key(|p| p.increment);
        Ok(out)
    }

    /// One point; only its own file is parsed (its name carries the id).
    pub fn point(&self, id: &Uuid) -> Result<Point, BackupError> {
        for dir in self.points_dirs() {
            if let Some(p) = read_points(&dir, Some(id))?.pop() {
                return Ok(p);
            }
        }
        Err(BackupError::NotFound(format!("restore point {id}")))
    }

    fn points_dirs(&self) -> Vec<PathBuf> {
        let Ok(series) = fs::read_dir(self.root.join("series")) else {
            return Vec::new();
        };
        series.flatten().map(|s| s.path().join("points")).collect()
    }

    fn point_path(&self, p: &Point) -> PathBuf {
        self.series_dir(&p.series)
            .join("points")
            .join(format!("{:08}-{}.json", p.increment, p.id))
    }

    /// Backs up `image` as the next point of `series`: reads it all, stores the chunks
    /// the store does not hold yet, then writes the point, last.
    pub fn backup(
        &self,
        image: &Path,
        series: &str,
        chunk_size: Option<u32>,
    ) -> Result<BackupStats, BackupError> {
        self.backup_from(
            &RawImage::open(image)?,
            series,
            chunk_size,
            None,
            &|_, _| {},
        )
    }

    /// Like [`Repo::backup`], but reads only the chunks that overlap `changed` byte
    /// ranges (offset, length), taking every other digest from the series' latest
    /// point. The caller vouches for the ranges (a QEMU dirty bitmap); without a
    /// previous point of the same size this is refused.
    pub fn backup_changed(
        &self,
        image: &Path,
        series: &str,
        changed: &[(u64, u64)],
    ) -> Result<BackupStats, BackupError> {
        let src = RawImage::open(image)?.with_changed(changed.to_vec());
        self.backup_from(&src, series, None, None, &|_, _| {})
    }

    /// Backs up `src` as the next point of `series`. When the source names its changed
    /// ranges, only the chunks they touch are read and the rest is the previous
    /// point's. Chunks are hashed, compressed and written on every core; `progress`
    /// hears (chunks done, chunks to do). `id` names the point (a new one when `None`).
    pub fn backup_from(
        &self,
        src: &dyn Source,
        series: &str,
        chunk_size: Option<u32>,
        id: Option<Uuid>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<BackupStats, BackupError> {
        check_series(series)?;
        self.recover()?;
        let cs = self.chunk_size(series, chunk_size)? as usize;
        let previous = self.series_points(series)?.pop();
        let increment = previous.as_ref().map(|p| p.increment + 1).unwrap_or(0);
        let size = src.size();
        let n_chunks = size.div_ceil(cs as u64) as usize;
        // Which chunks to read: all, or those the changed ranges touch.
        let (mut digests, todo): (Vec<Digest>, Vec<usize>) = match src.changed() {
            None => (vec![ZERO; n_chunks], (0..n_chunks).collect()),
            Some(ranges) => {
                let prev = previous.as_ref().ok_or_else(|| {
                    BackupError::Invalid(
                        "an incremental backup needs a previous point in the series".into(),
                    )
                })?;
                if prev.image_size != size || prev.chunk_size as usize != cs {
                    return Err(BackupError::Invalid(
                        "the image changed size since the previous point: take a full backup"
                            .into(),
                    ));
                }
                let mut set = std::collections::BTreeSet::new();
                for &(start, len) in ranges.iter().filter(|r| r.1 > 0) {
                    let first = (start / cs as u64) as usize;
                    let last = ((start + len - 1) / cs as u64) as usize;
                    set.extend(first..=last.min(n_chunks.saturating_sub(1)));
                }
                (self.digests(prev)?, set.into_iter().collect())
            }
        };
        let marker = self.begin_write()?;
        // On failure the marker stays: the next writer checks the chunks written so
        // far (nothing names them; gc frees them).
        let (found, read, stored, new_chunks) = self.store_chunks(src, cs, &todo, progress)?;
        for (i, d) in found {
            digests[i] = d;
        }
        let zero_chunks = digests.iter().filter(|d| **d == ZERO).count() as u64;
        let mut blocks = Vec::new();
        let mut stored = stored;
        for block in digests.chunks(BLOCK_ENTRIES) {
            let bytes: Vec<u8> = block.iter().flat_map(|d| d.iter().copied()).collect();
            let (d, added) = self.chunks.put(&bytes)?;
            stored += added;
            blocks.push(hex(&d));
        }
        // Everything the point names is durable before the point exists.
        self.chunks.sync()?;
        let point = Point {
            format: FORMAT_VERSION,
            id: id.unwrap_or_else(Uuid::new_v4),
            series: series.to_string(),
            increment,
            created_at: chrono::Utc::now(),
            image_size: size,
            chunk_size: cs as u32,
            blocks,
            stored_bytes: stored,
            read_bytes: read,
        };
        let bytes =
            serde_json::to_vec_pretty(&point).map_err(|e| BackupError::Format(e.to_string()))?;
        write_atomic(&self.point_path(&point), &bytes)?;
        self.end_write(&marker);
        Ok(BackupStats {
            chunks: digests.len() as u64,
            new_chunks,
            zero_chunks,
            point,
        })
    }

    /// Reads, hashes and stores the chunks `todo` on all cores. Returns their digests
    /// and (bytes read, bytes stored, chunks new to the store).
    #[allow(clippy::type_complexity)]
    fn store_chunks(
        &self,
        src: &dyn Source,
        cs: usize,
        todo: &[usize],
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(Vec<(usize, Digest)>, u64, u64, u64), BackupError> {
        struct Worker {
            out: Vec<(usize, Digest)>,
            read: u64,
            stored: u64,
            new: u64,
            buf: Vec<u8>,
            zeros: Vec<u8>,
        }
        let total = todo.len() as u64;
        let workers = on_all_cores(
            todo.len(),
            || Worker {
                out: Vec::new(),
                read: 0,
                stored: 0,
                new: 0,
                buf: vec![0u8; cs],
                zeros: vec![0u8; cs],
            },
            |w, k| {
                let i = todo[k];
                let offset = i as u64 * cs as u64;
                if src.is_hole(offset, cs as u64) {
                    w.out.push((i, ZERO));
                    return Ok(());
                }
                let n = src.read_at(offset, &mut w.buf)?;
                w.read += n as u64;
                let data = &w.buf[..n];
                if data == &w.zeros[..n] {
                    w.out.push((i, ZERO));
                    return Ok(());
                }
                let (d, added) = self
                    .chunks
                    .put_hashed(*blake3::hash(data).as_bytes(), data)?;
                if added > 0 {
                    w.new += 1;
                }
                w.stored += added;
                w.out.push((i, d));
                Ok(())
            },
            |done| progress(done, total),
        )?;
        let (mut all, mut read, mut stored, mut new) = (Vec::with_capacity(todo.len()), 0, 0, 0);
        for w in workers {
            all.extend(w.out);
            read += w.read;
            stored += w.stored;
            new += w.new;
        }
        Ok((all, read, stored, new))
    }

    fn dirty_dir(&self) -> PathBuf {
        self.root.join("dirty")
    }

    /// Leaves a marker saying "this process writes unsynced chunks": if it dies before
    /// its sync, the next writer checks every chunk written since.
    fn begin_write(&self) -> Result<PathBuf, BackupError> {
        let dir = self.dirty_dir();
        fs::create_dir_all(&dir).map_err(io("creating the dirty-marker directory"))?;
        let marker = dir.join(format!("{}-{}", std::process::id(), Uuid::new_v4()));
        write_atomic(&marker, boot_id().as_bytes())?;
        Ok(marker)
    }

    fn end_write(&self, marker: &Path) {
        let _ = fs::remove_file(marker);
    }

    /// Checks what a dead writer may have left unsynced: each chunk written since its
    /// marker is re-hashed and removed when damaged (a later backup writes it again).
    /// A marker belongs to a dead writer when its boot differs or its process is gone.
    pub fn recover(&self) -> Result<usize, BackupError> {
        let Ok(entries) = fs::read_dir(self.dirty_dir()) else {
            return Ok(0);
        };
        let this_boot = boot_id();
        let mut stale = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((pid, _)) = name.split_once('-') else {
                continue; // a marker's temporary file
            };
            let boot = fs::read_to_string(e.path()).unwrap_or_default();
            let alive = boot == this_boot && Path::new("/proc").join(pid).exists();
            if !alive {
                let mtime = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(io("reading a marker's time"))?;
                stale.push((mtime, e.path()));
            }
        }
        let Some(since) = stale.iter().map(|(m, _)| *m).min() else {
            return Ok(0);
        };
        let since = since - Duration::from_secs(2); // coarse file-system clocks
        let mut removed = 0;
        let (chunks, _) = self.chunks.list()?;
        for (d, _, _) in chunks.into_iter().filter(|c| c.1 >= since) {
            if matches!(self.chunks.get(&d), Err(BackupError::Damaged { .. })) {
                tracing::warn!(chunk = %hex(&d), "removing a chunk a crash left damaged");
                self.chunks.remove(&d)?;
                removed += 1;
            }
        }
        self.chunks.sync()?;
        for (_, p) in stale {
            let _ = fs::remove_file(p);
        }
        Ok(removed)
    }

    /// The point's chunk digests, in image order.
    fn digests(&self, p: &Point) -> Result<Vec<Digest>, BackupError> {
        let mut out = Vec::new();
        for b in &p.blocks {
            let bytes = self.chunks.get(&parse_digest(b)?)?;
            if bytes.len() % 32 != 0 {
                return Err(BackupError::Damaged {
                    digest: b.clone(),
                    reason: "index block of odd length".into(),
                });
            }
            out.extend(bytes.chunks_exact(32).map(|c| {
                let mut d = [0u8; 32];
                d.copy_from_slice(c);
                d
            }));
        }
        Ok(out)
    }

    /// Writes the point's image to `out`. Every chunk is checked against its digest
    /// first; a damaged one stops the restore and nothing is left at `out`.
    pub fn restore(&self, id: &Uuid, out: &Path) -> Result<Point, BackupError> {
        let p = self.point(id)?;
        let tmp = out.with_extension("restoring");
        let result = (|| {
            let f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&tmp)
                .map_err(io(format!("creating {}", tmp.display())))?;
            f.set_len(p.image_size).map_err(io("sizing the output"))?;
            let digests = self.digests(&p)?;
            // Zero chunks are already zero in the sparse file.
            let todo: Vec<usize> = (0..digests.len()).filter(|i| digests[*i] != ZERO).collect();
            on_all_cores(
                todo.len(),
                || (),
                |_, k| {
                    let i = todo[k];
                    let data = self.chunks.get(&digests[i])?;
                    f.write_all_at(&data, i as u64 * p.chunk_size as u64)
                        .map_err(io(format!("writing {}", tmp.display())))
                },
                |_| {},
            )?;
            f.sync_all().map_err(io("syncing the output"))
        })();
        match result {
            Ok(()) => {
                fs::rename(&tmp, out).map_err(io(format!("renaming to {}", out.display())))?;
                Ok(p)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Re-reads and re-hashes every chunk of the given points (all when `None`).
    pub fn verify(&self, only: Option<&Uuid>) -> Result<VerifyReport, BackupError> {
        self.verify_with(only, false)
    }

    /// [`Repo::verify`] that also moves damaged chunks aside (`<digest>.bad`), so the
    /// next backup holding that data stores it afresh instead of trusting the bad copy.
    /// The points that named them stay damaged.
    pub fn verify_and_quarantine(&self, only: Option<&Uuid>) -> Result<VerifyReport, BackupError> {
        self.verify_with(only, true)
    }

    fn verify_with(
        &self,
        only: Option<&Uuid>,
        quarantine: bool,
    ) -> Result<VerifyReport, BackupError> {
        let mut report = VerifyReport::default();
        let mut seen: HashMap<Digest, bool> = HashMap::new();
        let mut bad_chunks = HashSet::new();
        let points = match only.map(|id| self.point(id)) {
            Some(Ok(p)) => vec![p],
            Some(Err(BackupError::NotFound(_))) => vec![],
            Some(Err(e)) => return Err(e),
            None => self.points()?,
        };
        for p in points {
            report.checked_points += 1;
            let mut ok = true;
            let mut check = |d: Digest, repo: &Repo| -> bool {
                *seen.entry(d).or_insert_with(|| {
                    let good = repo.chunks.get(&d).is_ok();
                    if !good {
                        bad_chunks.insert(hex(&d));
                    }
                    good
                })
            };
            for b in &p.blocks {
                ok &= check(parse_digest(b)?, self);
            }
            if ok {
                for d in self.digests(&p)?.into_iter().filter(|d| *d != ZERO) {
                    ok &= check(d, self);
                }
            }
            if !ok {
                report.damaged_points.push(p.id);
            }
        }
        report.checked_chunks = seen.len();
        if quarantine {
            for h in &bad_chunks {
                self.chunks.quarantine(&parse_digest(h)?)?;
            }
        }
        report.damaged_chunks = bad_chunks.into_iter().collect();
        report.damaged_chunks.sort();
        Ok(report)
    }

    /// Removes a point. No other point depends on it; its chunks go at the next gc.
    pub fn delete(&self, id: &Uuid) -> Result<Point, BackupError> {
        let p = self.point(id)?;
        fs::remove_file(self.point_path(&p)).map_err(io("removing the point"))?;
        Ok(p)
    }

    /// Mark and sweep: removes chunks no point references, and temporary files, once
    /// they are older than `safety` (a backup running now may still link to them).
    /// Returns (files removed, bytes freed).
    pub fn gc(&self, safety: Duration) -> Result<(u64, u64), BackupError> {
        let mut live = HashSet::new();
        for p in self.points()? {
            for b in &p.blocks {
                live.insert(parse_digest(b)?);
            }
            live.extend(self.digests(&p)?);
        }
        let cutoff = SystemTime::now() - safety;
        let (mut removed, mut freed) = (0u64, 0u64);
        let (chunks, temps) = self.chunks.list()?;
        let dead = chunks
            .into_iter()
            .filter(|(d, mtime, _)| !live.contains(d) && *mtime < cutoff)
            .map(|(_, _, p)| p);
        let stale = temps
            .into_iter()
            .filter(|(m, _)| *m < cutoff)
            .map(|(_, p)| p);
        for path in dead.chain(stale) {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
            removed += 1;
            freed += len;
        }
        Ok((removed, freed))
    }
}

/// The complete points in a series' `points` directory (all, or the one named `only`).
fn read_points(dir: &Path, only: Option<&Uuid>) -> Result<Vec<Point>, BackupError> {
    let Ok(files) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let suffix = only.map(|id| format!("-{id}.json"));
    let mut out = Vec::new();
    for f in files.flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue; // a point still being written
        }
        if suffix.as_ref().is_some_and(|s| !name.ends_with(s.as_str())) {
            continue;
        }
        let bytes = fs::read(f.path()).map_err(io(format!("reading {name}")))?;
        let p: Point = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Format(format!("{name}: {e}")))?;
        out.push(p);
    }
    Ok(out)
}

/// Runs `work` on items `0..n` on every core (up to 8 threads), 16 items at a time.
/// Each thread folds its items into its own state from `init`; the first error stops
/// the others and is returned. `done` hears how many items are finished.
fn on_all_cores<T: Send>(
    n: usize,
    init: impl Fn() -> T + Sync,
    work: impl Fn(&mut T, usize) -> Result<(), BackupError> + Sync,
    done: impl Fn(u64) + Sync,
) -> Result<Vec<T>, BackupError> {
    const BATCH: usize = 16;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let next = AtomicUsize::new(0);
    let finished = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> Result<T, BackupError> {
        let mut state = init();
        loop {
            let k = next.fetch_add(BATCH, Ordering::Relaxed);
            if k >= n || failed.load(Ordering::Relaxed) {
                return Ok(state);
            }
            let end = (k + BATCH).min(n);
            for item in k..end {
                work(&mut state, item).inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
            }
            done(finished.fetch_add((end - k) as u64, Ordering::Relaxed) + (end - k) as u64);
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(BackupError::Invalid("a worker thread panicked".into()))
                })
            })
            .collect()
    })
}

/// This boot's id: a marker from another boot means the machine went down with it.
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, data: &[u8]) {
        fs::write(path, data).unwrap();
    }

    #[test]
    fn incremental_points_store_only_changes_and_each_restores_alone() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open(&dir.path().join("repo")).unwrap();
        let img = dir.path().join("disk.img");
        let mut data = vec![0u8; 4 << 20];
        for (i, b) in data.iter_mut().enumerate().skip(1 << 20).take(1 << 20) {
            *b = (i % 251) as u8;
        }
        write(&img, &data);
        let first = repo.backup(&img, "vm-1", None).unwrap();
        assert_eq!(first.point.increment, 0);
        assert_eq!(first.chunks, 64);
        assert_eq!(first.zero_chunks, 48);
        data[3 << 20] = 7; // one chunk changes
        write(&img, &data);
        let second = repo.backup(&img, "vm-1", None).unwrap();
        assert_eq!(second.point.increment, 1);
        assert_eq!(second.new_chunks, 1);
        assert!(
            second.point.stored_bytes < 40_000,
            "{}",
            second.point.stored_bytes
        );
        repo.delete(&first.point.id).unwrap();
        // Only the baseline's own index block is garbage now (its data chunks are all
        // shared with the second point: the change turned a zero chunk into data).
        assert_eq!(repo.gc(Duration::ZERO).unwrap().0, 1);
        let out = dir.path().join("out.img");
        repo.restore(&second.point.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
        let report = repo.verify(None).unwrap();
        assert!(report.damaged_points.is_empty());
        assert!(matches!(
            repo.backup(&img, "../x", None),
            Err(BackupError::Invalid(_))
        ));
    }

    #[test]
    fn a_changed_range_backup_reads_only_those_chunks_and_equals_a_full_one() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open(&dir.path().join("repo")).unwrap();
        let img = dir.path().join("disk.img");
        let mut data: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 253) as u8).collect();
        write(&img, &data);
        assert!(
            repo.backup_changed(&img, "s", &[(0, 1)]).is_err(),
            "needs a baseline"
        );
        repo.backup(&img, "s", None).unwrap();
        // Two small writes, one straddling a chunk boundary.
        data[100] = 1;
        let edge = 3 * 65536 - 2;
        data[edge..edge + 4].copy_from_slice(&[9, 9, 9, 9]);
        write(&img, &data);
        let inc = repo
            .backup_changed(&img, "s", &[(100, 1), (edge as u64, 4)])
            .unwrap();
        assert_eq!(
            inc.point.read_bytes,
            3 * 65536,
            "three chunks read, no more"
        );
        let full = repo.backup(&img, "s", None).unwrap();
        assert_eq!(
            repo.digests(&inc.point).unwrap(),
            repo.digests(&full.point).unwrap()
        );
        let out = dir.path().join("out.img");
        repo.restore(&inc.point.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
        data.push(0);
        write(&img, &data);
        assert!(
            repo.backup_changed(&img, "s", &[(0, 1)]).is_err(),
            "size changed"
        );
    }

    #[test]
    fn a_dead_writers_damaged_chunks_are_found_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let repo = Repo::open(&root).unwrap();
        let img = dir.path().join("disk.img");
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 241) as u8).collect();
        write(&img, &data);
        // A writer that died before its sync: its marker stays, from another boot.
        let marker = repo.begin_write().unwrap();
        write(&marker, b"another-boot");
        let (d, _) = repo.chunks.put(&data[..65536]).unwrap();
        // The crash left the chunk file torn.
        write(&repo.chunks.path_of(&d), b"SKC1");
        assert_eq!(repo.recover().unwrap(), 1);
        assert!(!marker.exists());
        // A marker of a live writer (this process, this boot) is left alone.
        let live = repo.begin_write().unwrap();
        assert_eq!(repo.recover().unwrap(), 0);
        assert!(live.exists());
        repo.end_write(&live);
        let p = repo.backup(&img, "s", None).unwrap();
        let out = dir.path().join("out.img");
        repo.restore(&p.point.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
        assert!(fs::read_dir(root.join("dirty")).unwrap().next().is_none());
    }
}
