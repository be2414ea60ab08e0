//! In-memory fake of [`KvBackend`](super::KvBackend), for unit tests only: nothing survives the
//! process and `flush` is a no-op. One `BTreeMap` per tree behind one lock, so every batch is
//! trivially atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::{KeyRange, KvBackend, KvError, KvIter, WriteBatch, WriteOp};

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// A fake, in-memory [`KvBackend`]. Never use it where a user expects durability.
#[derive(Debug, Default)]
pub struct MemBackend {
    trees: RwLock<HashMap<String, Tree>>,
}

impl MemBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned(op: &'static str, tree: &str) -> KvError {
    KvError::Backend {
        op,
        tree: tree.to_owned(),
        message: "lock poisoned by a panicking writer".to_owned(),
    }
}

impl KvBackend for MemBackend {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let trees = self.trees.read().map_err(|_| poisoned("get", tree))?;
        Ok(trees.get(tree).and_then(|t| t.get(key).cloned()))
    }

    fn scan(&self, tree: &str, range: KeyRange) -> Result<KvIter, KvError> {
        let trees = self.trees.read().map_err(|_| poisoned("scan", tree))?;
        // Copy out under the lock: a fake can afford it, and the iterator then owns its data.
        let pairs: Vec<_> = match trees.get(tree) {
            Some(t) if !range.is_empty() => {
                t.range(range).map(|(k, v)| Ok((k.clone(), v.clone()))).collect()
            }
            _ => Vec::new(),
        };
        Ok(Box::new(pairs.into_iter()))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        let mut trees = self.trees.write().map_err(|_| poisoned("write", ""))?;
        for op in batch.ops {
            match op {
                WriteOp::Put { tree, key, value } => {
                    trees.entry(tree).or_default().insert(key, value);
                }
                WriteOp::Delete { tree, key } => {
                    if let Some(t) = trees.get_mut(&tree) {
                        t.remove(&key);
                    }
                }
                WriteOp::DeleteRange { tree, range } => {
                    if let Some(t) = trees.get_mut(&tree) {
                        t.retain(|k, _| !range.contains_key(k));
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), KvError> {
        Ok(())
    }
}
