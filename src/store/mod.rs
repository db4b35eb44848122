//! The datastore: sled trees of serde records, with secondary indexes kept in the same
//! transaction as the record they point at. Nothing here knows about HTTP or drivers.

mod table;

pub use table::{IndexDef, Record, Table};

use std::path::Path;

/// Errors of the datastore.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed (I/O, corruption, or the directory is locked).
    #[error("datastore: {0}")]
    Sled(#[from] sled::Error),
    /// The flush task did not complete (the runtime is shutting down).
    #[error("datastore: flush did not complete: {0}")]
    Flush(String),
    /// A stored value could not be decoded into its record type.
    #[error("datastore: record {kind}/{id} is unreadable: {reason}")]
    Decode {
        kind: &'static str,
        id: String,
        reason: String,
    },
    /// A record could not be encoded.
    #[error("datastore: cannot encode a {kind} record: {reason}")]
    Encode { kind: &'static str, reason: String },
    /// A unique secondary index already holds this value for another record.
    #[error("datastore: {kind} index {index} already holds this value")]
    UniqueViolation {
        kind: &'static str,
        index: &'static str,
    },
    /// A record with this id exists already.
    #[error("datastore: {kind}/{id} exists already")]
    Exists { kind: &'static str, id: String },
    /// The data directory was written by a newer skiff than this one.
    #[error("datastore: schema version {found} is newer than this binary supports ({supported}); upgrade skiff")]
    TooNew { found: u32, supported: u32 },
    /// A migration step failed; the store is left at the last good version.
    #[error("datastore: migration to schema version {to} failed: {reason}")]
    Migration { to: u32, reason: String },
}

/// The schema version this binary writes. Bump it together with a new [`Migration`].
pub const SCHEMA_VERSION: u32 = 1;

const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// A step that upgrades the whole store from `to - 1` to `to`. Steps run in order, each
/// followed by a durable bump of the stored version, so an interrupted upgrade resumes.
pub struct Migration {
    pub to: u32,
    pub run: fn(&sled::Db) -> Result<(), String>,
}

/// The migrations of this binary, oldest first.
pub const MIGRATIONS: &[Migration] = &[];

/// Opens sled, waiting up to two seconds for the directory lock: a handle dropped a
/// moment ago (or a process that just exited) may still hold it. A lock held longer
/// belongs to a running skiff and is reported.
fn open_retrying(dir: &Path) -> Result<sled::Db, StoreError> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(dir).open() {
            // sled reports a held lock as kind Other with the OS error in its text.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// A handle on the datastore; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    /// Opens (or creates) the store under `dir` and runs pending migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, SCHEMA_VERSION, MIGRATIONS)
    }

    /// Like [`Store::open`] with an explicit target version and migration list (tests).
    pub fn open_with(
        dir: &Path,
        target: u32,
        migrations: &[Migration],
    ) -> Result<Self, StoreError> {
        let db = open_retrying(dir)?;
        let store = Store { db };
        store.migrate(target, migrations)?;
        Ok(store)
    }

    /// The schema version recorded in the store (0 for a store that predates versioning).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        Ok(meta
            .get(SCHEMA_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    fn set_schema_version(&self, v: u32) -> Result<(), StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        meta.insert(SCHEMA_KEY, &v.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn migrate(&self, target: u32, migrations: &[Migration]) -> Result<(), StoreError> {
        let fresh = self.db.tree_names().len() <= 1 && self.db.is_empty();
        let mut current = self.schema_version()?;
        if current > target {
            return Err(StoreError::TooNew {
                found: current,
                supported: target,
            });
        }
        if fresh && current == 0 {
            // A brand-new store starts at the current schema: nothing to migrate.
            return self.set_schema_version(target);
        }
        let start = current;
        for m in migrations.iter().filter(|m| m.to > start && m.to <= target) {
            tracing::info!(from = current, to = m.to, "migrating datastore");
            (m.run)(&self.db).map_err(|reason| StoreError::Migration { to: m.to, reason })?;
            self.set_schema_version(m.to)?;
            current = m.to;
        }
        if current < target {
            self.set_schema_version(target)?;
        }
        Ok(())
    }

    /// The typed table of record kind `T`.
    pub fn table<T: Record>(&self) -> Result<Table<T>, StoreError> {
        Table::open(&self.db)
    }

    /// The next value of the named integer counter (1, 2, 3, …), durable before it returns,
    /// so an id is never handed out twice, even across a crash.
    pub fn next_id(&self, counter: &str) -> Result<u64, StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        let key = format!("counter/{counter}");
        let next = meta.update_and_fetch(key.as_bytes(), |old| {
            let n = old
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        Ok(next
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1))
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// `flush` without blocking a runtime thread. Not sled's own `flush_async`: in
    /// sled 0.34 concurrent calls of it deadlock (spacejam/sled#1308; seen here as a
    /// server that stopped answering under 50 concurrent writes). The blocking flush
    /// runs on the blocking pool instead; concurrent callers queue on sled's flush.
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(r) => r.map(|_| ()).map_err(StoreError::from),
            Err(e) => Err(StoreError::Flush(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_dense_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.next_id("volume").unwrap(), 1);
            assert_eq!(s.next_id("volume").unwrap(), 2);
            assert_eq!(s.next_id("snapshot").unwrap(), 1);
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.next_id("volume").unwrap(), 3);
    }

    #[test]
    fn fresh_store_is_at_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    fn add_marker(db: &sled::Db) -> Result<(), String> {
        let t = db.open_tree("marker").map_err(|e| e.to_string())?;
        let n = t
            .get("runs")
            .map_err(|e| e.to_string())?
            .map(|v| v[0])
            .unwrap_or(0);
        t.insert("runs", &[n + 1]).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn fail(_: &sled::Db) -> Result<(), String> {
        Err("disk on fire".into())
    }

    #[test]
    fn migrations_run_once_in_order_and_stop_at_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open_with(dir.path(), 1, &[]).unwrap();
            s.next_id("x").unwrap(); // some data, so the store is not fresh
        }
        let steps = [
            Migration {
                to: 2,
                run: add_marker,
            },
            Migration { to: 3, run: fail },
        ];
        let err = Store::open_with(dir.path(), 3, &steps).err().unwrap();
        assert!(matches!(err, StoreError::Migration { to: 3, .. }), "{err}");
        // Version 2 was reached and recorded; reopening at 2 does not run step 2 again.
        let s = Store::open_with(dir.path(), 2, &steps).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        let runs =
            s.db.open_tree("marker")
                .unwrap()
                .get("runs")
                .unwrap()
                .unwrap();
        assert_eq!(runs[0], 1);
        drop(s);
        let err = Store::open_with(dir.path(), 1, &[]).err().unwrap();
        assert!(matches!(
            err,
            StoreError::TooNew {
                found: 2,
                supported: 1
            }
        ));
    }
}
