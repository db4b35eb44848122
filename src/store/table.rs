//! A typed view of one record kind: its tree plus its index trees.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Tree;

use super::StoreError;

/// A secondary index of a record kind. Unique indexes map a value to one id; the others
/// map `value ‖ 0x00 ‖ id` to nothing, so a prefix scan lists every id with that value.
pub struct IndexDef {
    pub name: &'static str,
    pub unique: bool,
}

/// A record kind kept in the store.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Tree name; also the prefix of the index trees.
    const KIND: &'static str;
    /// Version of the encoded shape; a value with another version needs a migration.
    const VERSION: u16 = 1;
    /// The secondary indexes, in the order [`Record::index_values`] reports them.
    const INDEXES: &'static [IndexDef] = &[];

    /// Primary key bytes.
    fn key(&self) -> Vec<u8>;

    /// One value per entry of [`Record::INDEXES`]; `None` leaves the record out of that index.
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        Vec::new()
    }
}

/// Typed access to the records of kind `T`.
pub struct Table<T: Record> {
    trees: Vec<Tree>,
    _kind: PhantomData<T>,
}

impl<T: Record> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            trees: self.trees.clone(),
            _kind: PhantomData,
        }
    }
}

fn index_key(value: &[u8], id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 1 + id.len());
    k.extend_from_slice(value);
    k.push(0);
    k.extend_from_slice(id);
    k
}

/// An error raised inside a transaction: a store error or the caller's own.
enum TxError<E> {
    Store(StoreError),
    Caller(E),
}

impl<T: Record> Table<T> {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let mut trees = vec![db.open_tree(T::KIND)?];
        for idx in T::INDEXES {
            trees.push(db.open_tree(format!("{}/{}", T::KIND, idx.name))?);
        }
        Ok(Table {
            trees,
            _kind: PhantomData,
        })
    }

    fn encode(rec: &T) -> Result<Vec<u8>, StoreError> {
        let mut out = T::VERSION.to_be_bytes().to_vec();
        serde_json::to_writer(&mut out, rec).map_err(|e| StoreError::Encode {
            kind: T::KIND,
            reason: e.to_string(),
        })?;
        Ok(out)
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
        let err = |reason: String| StoreError::Decode {
            kind: T::KIND,
            id: String::from_utf8_lossy(key).into_owned(),
            reason,
        };
        let (ver, body) = bytes
            .split_first_chunk::<2>()
            .ok_or_else(|| err("truncated value".into()))?;
        let ver = u16::from_be_bytes(*ver);
        if ver != T::VERSION {
            return Err(err(format!(
                "encoded as version {ver}, expected {}",
                T::VERSION
            )));
        }
        serde_json::from_slice(body).map_err(|e| err(e.to_string()))
    }

    /// The record with this primary key.
    pub fn get(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.trees[0]
            .get(key)?
            .map(|v| Self::decode(key, &v))
            .transpose()
    }

    /// Every record, in key order.
    pub fn all(&self) -> Result<Vec<T>, StoreError> {
        self.trees[0]
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Self::decode(&k, &v)
            })
            .collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.trees[0].len()
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.trees[0].is_empty()
    }

    fn tree_of(&self, index: &str) -> &Tree {
        let pos = T::INDEXES
            .iter()
            .position(|d| d.name == index)
            .expect("index name is one of Record::INDEXES");
        &self.trees[pos + 1]
    }

    /// Records whose (non-unique) index `index` holds `value`, in id order.
    pub fn by_index(&self, index: &str, value: &[u8]) -> Result<Vec<T>, StoreError> {
        let tree = self.tree_of(index);
        let mut prefix = value.to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Some(rec) = self.get(&k[prefix.len()..])? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Number of records whose index `index` holds `value`, without decoding them.
    pub fn count_by_index(&self, index: &str, value: &[u8]) -> Result<usize, StoreError> {
        let mut prefix = value.to_vec();
        prefix.push(0);
        let mut n = 0;
        for kv in self.tree_of(index).scan_prefix(&prefix) {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    /// The record that unique index `index` maps `value` to.
    pub fn by_unique(&self, index: &str, value: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree_of(index).get(value)? {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// Writes `rec` and its index entries atomically; fails if the key exists.
    pub fn create(&self, rec: &T) -> Result<(), StoreError> {
        self.write(rec, true)
    }

    /// Writes `rec`, replacing any record with the same key, indexes included.
    pub fn put(&self, rec: &T) -> Result<(), StoreError> {
        self.write(rec, false)
    }

    fn write(&self, rec: &T, must_be_new: bool) -> Result<(), StoreError> {
        let key = rec.key();
        let value = Self::encode(rec)?;
        self.transact(|txs| {
            let old = txs[0].get(&key)?;
            if must_be_new && old.is_some() {
                return abort(StoreError::Exists {
                    kind: T::KIND,
                    id: String::from_utf8_lossy(&key).into_owned(),
                });
            }
            let old = match old {
                Some(b) => Some(Self::decode(&key, &b).or_else(abort)?),
                None => None,
            };
            Self::reindex(txs, &key, old.as_ref(), Some(rec))?;
            txs[0].insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })
        .map_err(|e| match e {
            TxError::Store(e) | TxError::Caller(e) => e,
        })
    }

    /// Reads, changes and writes one record atomically. `f` may run more than once
    /// (sled retries on conflict), so it must only change the record it is given.
    /// Returns `Ok(None)` when there is no such record.
    pub fn update<E: From<StoreError>>(
        &self,
        key: &[u8],
        f: impl Fn(&mut T) -> Result<(), E>,
    ) -> Result<Option<T>, E> {
        self.transact(|txs| {
            let Some(bytes) = txs[0].get(key)? else {
                return Ok(None);
            };
            let old = Self::decode(key, &bytes).or_else(abort)?;
            let mut new = old.clone();
            f(&mut new).map_err(|e| ConflictableTransactionError::Abort(TxError::Caller(e)))?;
            Self::reindex(txs, key, Some(&old), Some(&new))?;
            let value = Self::encode(&new).or_else(abort)?;
            txs[0].insert(key, value)?;
            Ok(Some(new))
        })
        .map_err(|e| match e {
            TxError::Store(e) => E::from(e),
            TxError::Caller(e) => e,
        })
    }

    /// Removes a record and its index entries; returns what was removed.
    pub fn delete(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.transact(|txs| {
            let Some(bytes) = txs[0].remove(key)? else {
                return Ok(None);
            };
            let old = Self::decode(key, &bytes).or_else(abort)?;
            Self::reindex(txs, key, Some(&old), None)?;
            Ok(Some(old))
        })
        .map_err(|e| match e {
            TxError::Store(e) | TxError::Caller(e) => e,
        })
    }

    fn transact<R, E>(
        &self,
        body: impl Fn(&Vec<TransactionalTree>) -> Result<R, ConflictableTransactionError<TxError<E>>>,
    ) -> Result<R, TxError<E>> {
        use sled::Transactional;
        self.trees[..]
            .transaction(|txs| body(txs))
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => TxError::Store(StoreError::Sled(e)),
            })
    }

    fn reindex<E>(
        txs: &[TransactionalTree],
        key: &[u8],
        old: Option<&T>,
        new: Option<&T>,
    ) -> Result<(), ConflictableTransactionError<TxError<E>>> {
        let old_vals = old.map(|r| r.index_values()).unwrap_or_default();
        let new_vals = new.map(|r| r.index_values()).unwrap_or_default();
        for (i, def) in T::INDEXES.iter().enumerate() {
            let tx = &txs[i + 1];
            let before = old_vals.get(i).cloned().flatten();
            let after = new_vals.get(i).cloned().flatten();
            if before == after {
                continue;
            }
            if let Some(v) = before {
                if def.unique {
                    tx.remove(v)?;
                } else {
                    tx.remove(index_key(&v, key))?;
                }
            }
            if let Some(v) = after {
                if def.unique {
                    if let Some(holder) = tx.get(&v)? {
                        if holder.as_ref() != key {
                            return abort(StoreError::UniqueViolation {
                                kind: T::KIND,
                                index: def.name,
                            });
                        }
                    }
                    tx.insert(v, key)?;
                } else {
                    tx.insert(index_key(&v, key), &[][..])?;
                }
            }
        }
        Ok(())
    }
}

fn abort<R, E>(e: StoreError) -> Result<R, ConflictableTransactionError<TxError<E>>> {
    Err(ConflictableTransactionError::Abort(TxError::Store(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use serde::Deserialize;

    #[derive(Clone, Serialize, Deserialize, Debug, PartialEq)]
    struct Pet {
        id: String,
        owner: String,
        tag: Option<String>,
    }

    impl Record for Pet {
        const KIND: &'static str = "pets";
        const INDEXES: &'static [IndexDef] = &[
            IndexDef {
                name: "owner",
                unique: false,
            },
            IndexDef {
                name: "tag",
                unique: true,
            },
        ];
        fn key(&self) -> Vec<u8> {
            self.id.as_bytes().to_vec()
        }
        fn index_values(&self) -> Vec<Option<Vec<u8>>> {
            vec![
                Some(self.owner.as_bytes().to_vec()),
                self.tag.as_ref().map(|t| t.as_bytes().to_vec()),
            ]
        }
    }

    fn pet(id: &str, owner: &str, tag: Option<&str>) -> Pet {
        Pet {
            id: id.into(),
            owner: owner.into(),
            tag: tag.map(Into::into),
        }
    }

    #[test]
    fn indexes_follow_create_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t: Table<Pet> = s.table().unwrap();
        t.create(&pet("1", "ann", Some("a"))).unwrap();
        t.create(&pet("2", "ann", None)).unwrap();
        t.create(&pet("3", "bob", Some("b"))).unwrap();
        assert!(matches!(
            t.create(&pet("1", "zed", None)),
            Err(StoreError::Exists { .. })
        ));
        let ann: Vec<_> = t.by_index("owner", b"ann").unwrap();
        assert_eq!(
            ann.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(t.by_unique("tag", b"b").unwrap().unwrap().id, "3");

        // A unique clash aborts the whole write: record and indexes stay as they were.
        let err = t
            .update::<StoreError>(b"2", |p| {
                p.tag = Some("a".into());
                p.owner = "bob".into();
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::UniqueViolation { index: "tag", .. }
        ));
        assert_eq!(t.get(b"2").unwrap().unwrap().owner, "ann");
        assert_eq!(t.count_by_index("owner", b"bob").unwrap(), 1);

        t.update::<StoreError>(b"1", |p| {
            p.owner = "bob".into();
            p.tag = Some("c".into());
            Ok(())
        })
        .unwrap();
        assert_eq!(t.count_by_index("owner", b"ann").unwrap(), 1);
        assert_eq!(t.count_by_index("owner", b"bob").unwrap(), 2);
        assert!(t.by_unique("tag", b"a").unwrap().is_none());
        assert_eq!(t.by_unique("tag", b"c").unwrap().unwrap().id, "1");

        let gone = t.delete(b"1").unwrap().unwrap();
        assert_eq!(gone.id, "1");
        assert!(t.by_unique("tag", b"c").unwrap().is_none());
        assert_eq!(t.count_by_index("owner", b"bob").unwrap(), 1);
        assert!(t.delete(b"1").unwrap().is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn caller_errors_abort_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t: Table<Pet> = s.table().unwrap();
        t.create(&pet("1", "ann", None)).unwrap();
        #[derive(Debug)]
        enum E {
            No,
            Store,
        }
        impl From<StoreError> for E {
            fn from(_: StoreError) -> Self {
                E::Store
            }
        }
        let r = t.update(b"1", |p| {
            p.owner = "eve".into();
            Err(E::No)
        });
        assert!(matches!(r, Err(E::No)));
        assert!(!matches!(r, Err(E::Store)));
        assert_eq!(t.get(b"1").unwrap().unwrap().owner, "ann");
        assert!(t.update::<E>(b"9", |_| Ok(())).unwrap().is_none());
    }

    #[test]
    fn a_value_of_another_version_is_reported_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t: Table<Pet> = s.table().unwrap();
        t.trees[0].insert(b"x", &[0u8, 9, b'{', b'}'][..]).unwrap();
        let err = t.get(b"x").unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }
}
