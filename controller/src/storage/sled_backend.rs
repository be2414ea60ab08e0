//! [`KvBackend`](super::KvBackend) on sled 0.34.7. Every sled type stays inside this file.
//!
//! * Trees map 1:1 to sled trees, opened lazily and cached.
//! * A [`WriteBatch`] runs as one sled multi-tree transaction, so it is atomic across trees.
//!   Range deletes are resolved to keys just before the transaction (sled transactions cannot
//!   iterate); the Raft layer is the only writer of its trees, so nothing can slip in between.
//! * `flush` is `Db::flush`: sled's default (`flush_every_ms = 500`) is NOT durable on return.

use std::collections::HashMap;

/// sled's page cache. Its default (1 GiB) made a controller's resident set grow toward a GiB
/// while it stored a scale-up's events (`bench -- sim`); the hot data — the log's tail, recent
/// events — is a small part of that, and the state machine lives in memory anyway.
pub const SLED_CACHE_BYTES: u64 = 128 * 1024 * 1024;
use std::path::Path;
use std::sync::RwLock;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{KeyRange, KvBackend, KvError, KvIter, WriteBatch, WriteOp};

/// The real, durable [`KvBackend`], one sled database in a directory.
pub struct SledBackend {
    db: sled::Db,
    trees: RwLock<HashMap<String, sled::Tree>>,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend").finish_non_exhaustive()
    }
}

fn backend_err(op: &'static str, tree: &str, e: impl std::fmt::Display) -> KvError {
    KvError::Backend { op, tree: tree.to_owned(), message: e.to_string() }
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`. Fails if another process holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, KvError> {
        let dir = dir.as_ref();
        let db = sled::Config::new().path(dir).cache_capacity(SLED_CACHE_BYTES).open().map_err(|e| KvError::Open {
            path: dir.display().to_string(),
            message: match &e {
                // sled locks its directory; WouldBlock means another process holds it.
                // (sled wraps the lock failure in an io::Error of its own, kind Other, whose
                // text carries the WouldBlock.)
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    "the data directory is in use by another process (is another controller or `berth dev` running with it?)".to_string()
                }
                other => other.to_string(),
            },
        })?;
        Ok(Self { db, trees: RwLock::new(HashMap::new()) })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, KvError> {
        {
            let trees = self
                .trees
                .read()
                .map_err(|_| backend_err("open_tree", name, "tree cache lock poisoned"))?;
            if let Some(t) = trees.get(name) {
                return Ok(t.clone());
            }
        }
        let tree = self.db.open_tree(name).map_err(|e| backend_err("open_tree", name, e))?;
        let mut trees = self
            .trees
            .write()
            .map_err(|_| backend_err("open_tree", name, "tree cache lock poisoned"))?;
        Ok(trees.entry(name.to_owned()).or_insert(tree).clone())
    }
}

/// Position of `name` in `names`, appending it if new.
fn index_of<'a>(name: &'a str, names: &mut Vec<&'a str>) -> usize {
    match names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

/// A batch op with its tree replaced by an index into the transaction's tree list and range
/// deletes resolved to concrete keys.
enum ResolvedOp<'a> {
    Put(usize, &'a [u8], &'a [u8]),
    Delete(usize, &'a [u8]),
    DeleteKeys(usize, &'a KeyRange, Vec<Vec<u8>>),
}

impl KvBackend for SledBackend {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let t = self.tree(tree)?;
        t.get(key).map(|v| v.map(|iv| iv.to_vec())).map_err(|e| backend_err("get", tree, e))
    }

    fn scan(&self, tree: &str, range: KeyRange) -> Result<KvIter, KvError> {
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let t = self.tree(tree)?;
        let name = tree.to_owned();
        let iter = t.range(range).map(move |r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| backend_err("scan", &name, e))
        });
        Ok(Box::new(iter))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Dedupe trees: sled would treat the same tree listed twice as a conflict.
        let mut names: Vec<&str> = Vec::new();
        let mut resolved = Vec::with_capacity(batch.len());
        for op in batch.ops() {
            match op {
                WriteOp::Put { tree, key, value } => {
                    let i = index_of(tree, &mut names);
                    resolved.push(ResolvedOp::Put(i, key, value));
                }
                WriteOp::Delete { tree, key } => {
                    let i = index_of(tree, &mut names);
                    resolved.push(ResolvedOp::Delete(i, key));
                }
                WriteOp::DeleteRange { tree, range } => {
                    let i = index_of(tree, &mut names);
                    let mut keys = Vec::new();
                    for pair in self.scan(tree, range.clone())? {
                        keys.push(pair?.0);
                    }
                    resolved.push(ResolvedOp::DeleteKeys(i, range, keys));
                }
            }
        }
        let trees = names.iter().map(|n| self.tree(n)).collect::<Result<Vec<_>, _>>()?;

        let result = trees.as_slice().transaction(|views| {
            for (pos, op) in resolved.iter().enumerate() {
                match op {
                    ResolvedOp::Put(i, k, v) => {
                        views[*i].insert(*k, *v)?;
                    }
                    ResolvedOp::Delete(i, k) => {
                        views[*i].remove(*k)?;
                    }
                    ResolvedOp::DeleteKeys(i, range, keys) => {
                        for k in keys {
                            views[*i].remove(k.as_slice())?;
                        }
                        // Keys put earlier in this batch did not exist at scan time.
                        for earlier in &resolved[..pos] {
                            if let ResolvedOp::Put(j, k, _) = earlier
                                && j == i
                                && range.contains_key(k)
                            {
                                views[*i].remove(*k)?;
                            }
                        }
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| match e {
            TransactionError::Abort(()) => backend_err("write", &names.join(","), "aborted"),
            TransactionError::Storage(e) => backend_err("write", &names.join(","), e),
        })
    }

    fn flush(&self) -> Result<(), KvError> {
        self.db.flush().map(|_| ()).map_err(|e| backend_err("flush", "*", e))
    }
}
