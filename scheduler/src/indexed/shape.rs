//! The candidate index of one task shape: every instance that admits the shape, ordered by score.
//!
//! A shape is what filters and strategies read of a task — group, cpu, memory, static ports —
//! so all tasks of a shape see the same candidates and scores. Per shape:
//!
//! ```text
//!   cell 0: local key → [instances, ascending]   (BTreeMap: best local key first)
//!   cell 1: local key → [instances, ascending]
//!   …
//!   order:  BTreeSet<(full key of the cell's best, cell)>   → best cell first
//! ```
//!
//! The winners of a task are the best local-key class of every cell tied at the front of
//! `order` ([`ShapeIndex::tied`]). After a placement on instance `i` ([`ShapeIndex::placed`]),
//! only `i` can change its verdict or its local key (every filter and local score is a function
//! of the instance's own state and the shape), and only the cells sharing `i`'s attribute values
//! can change their cell scores (when the task was of this shape's group). So an update re-checks
//! the non-static filters on `i`, moves `i` between classes, and re-ranks those cells:
//! O(dynamic filters + log n + affected cells · log cells), plus a memmove of the class vectors
//! touched (a class is the instances tied on every local score; the vector keeps them in id
//! order so the seeded tie-break can index it directly). Static filters (status, agent,
//! placement-independent `memberOf`) are evaluated once per instance when the index is built:
//! O(n · filters + n log n).

use std::collections::{BTreeMap, BTreeSet};

use super::cells::Cells;
use super::ranking::{Key, KeyPlan};
use crate::filter::Filter;
use crate::plan::PlacementFailure;
use crate::view::{ClusterState, TaskRequest};

/// The pass's filters, split by whether a placement can change their verdict.
pub(crate) struct FilterSet<'a> {
    /// Pipeline order (the failure explanation needs it).
    pub(crate) all: Vec<&'a dyn Filter>,
    static_: Vec<&'a dyn Filter>,
    dynamic: Vec<&'a dyn Filter>,
}

impl<'a> FilterSet<'a> {
    pub(crate) fn new(all: Vec<&'a dyn Filter>) -> Self {
        let (static_, dynamic) = all.iter().partition(|f| f.is_static());
        FilterSet { all, static_, dynamic }
    }
}

pub(crate) struct ShapeIndex {
    /// A task of the shape.
    pub(crate) task: TaskRequest,
    /// `[attribute][value]` → tasks of the shape's group on instances with that value.
    loads: Vec<Vec<i64>>,
    /// Per instance: every static filter admits the shape.
    static_ok: Vec<bool>,
    /// Per instance: its local key while it is a candidate.
    member: Vec<Option<Key>>,
    /// Per cell: local key → its candidates, ascending.
    classes: Vec<BTreeMap<Key, Vec<usize>>>,
    /// Per cell: its entry in `order`, while it has candidates.
    entry: Vec<Option<Key>>,
    /// `(full key of the cell's best class, cell)` for every cell with candidates.
    order: BTreeSet<(Key, usize)>,
    /// The last failure of this shape and the number of placements made when it was computed:
    /// while no placement happens, the next task of the shape fails the same way.
    pub(crate) failure: Option<(usize, PlacementFailure)>,
}

impl ShapeIndex {
    /// Indexes every instance of `cluster` (in its current state) for `task`'s shape.
    pub(crate) fn build(
        task: &TaskRequest,
        keys: &KeyPlan,
        cells: &Cells,
        cluster: &ClusterState,
        filters: &FilterSet<'_>,
    ) -> ShapeIndex {
        let n = cluster.len();
        let mut loads: Vec<Vec<i64>> =
            (0..cells.attributes()).map(|a| vec![0; cells.values(a)]).collect();
        for (i, inst) in cluster.instances().iter().enumerate() {
            for (a, loads) in loads.iter_mut().enumerate() {
                if let Some(v) = cells.value_of(a, i) {
                    loads[v] += i64::from(inst.group_count(&task.group));
                }
            }
        }
        let mut index = ShapeIndex {
            task: task.clone(),
            loads,
            static_ok: cluster
                .instances()
                .iter()
                .map(|inst| filters.static_.iter().all(|f| f.admits(inst, task)))
                .collect(),
            member: vec![None; n],
            classes: vec![BTreeMap::new(); cells.len()],
            entry: vec![None; cells.len()],
            order: BTreeSet::new(),
            failure: None,
        };
        for i in 0..n {
            if let Some(key) = index.verdict(i, keys, cluster, filters) {
                // Ascending `i`: pushing keeps every class sorted.
                index.classes[cells.cell_of(i)].entry(key).or_default().push(i);
                index.member[i] = Some(key);
            }
        }
        for cell in 0..cells.len() {
            index.rerank(cell, keys, cells);
        }
        index
    }

    /// Instance `i`'s local key if it admits the shape now.
    fn verdict(
        &self,
        i: usize,
        keys: &KeyPlan,
        cluster: &ClusterState,
        filters: &FilterSet<'_>,
    ) -> Option<Key> {
        let inst = cluster.get(i);
        let admits =
            self.static_ok[i] && filters.dynamic.iter().all(|f| f.admits(inst, &self.task));
        admits.then(|| keys.local_key(inst, &self.task))
    }

    /// The winners: for every cell tied on the best full key, its best class (ascending
    /// instance indices). Empty when no instance admits the shape. O(log cells + tied cells).
    pub(crate) fn tied(&self) -> Vec<&[usize]> {
        let mut out = Vec::new();
        let mut order = self.order.iter();
        let Some((best, cell)) = order.next() else {
            return out;
        };
        out.push(self.best_class(*cell));
        out.extend(
            order.take_while(|(key, _)| key == best).map(|(_, cell)| self.best_class(*cell)),
        );
        out
    }

    fn best_class(&self, cell: usize) -> &[usize] {
        self.classes[cell].first_key_value().map_or(&[], |(_, members)| members.as_slice())
    }

    /// Records that `placed` (any shape) now runs on instance `i`; `cluster` already shows it.
    pub(crate) fn placed(
        &mut self,
        i: usize,
        placed: &TaskRequest,
        keys: &KeyPlan,
        cells: &Cells,
        cluster: &ClusterState,
        filters: &FilterSet<'_>,
    ) {
        let cell = cells.cell_of(i);
        let mut dirty = vec![cell];
        if placed.group == self.task.group {
            for a in 0..cells.attributes() {
                if let Some(v) = cells.value_of(a, i) {
                    self.loads[a][v] += 1;
                    dirty.extend_from_slice(cells.sharing(a, v));
                }
            }
        }
        let new = self.verdict(i, keys, cluster, filters);
        if new != self.member[i] {
            if let Some(old) = self.member[i].take() {
                let class = self.classes[cell].get_mut(&old).expect("a member is in its class");
                if let Ok(pos) = class.binary_search(&i) {
                    class.remove(pos);
                }
                if class.is_empty() {
                    self.classes[cell].remove(&old);
                }
            }
            if let Some(key) = new {
                let class = self.classes[cell].entry(key).or_default();
                if let Err(pos) = class.binary_search(&i) {
                    class.insert(pos, i);
                }
                self.member[i] = Some(key);
            }
        } else if dirty.len() == 1 {
            // Same verdict, same key, no load change: the ranking is unchanged.
            return;
        }
        dirty.sort_unstable();
        dirty.dedup();
        for cell in dirty {
            self.rerank(cell, keys, cells);
        }
    }

    /// Puts `cell` back in `order` under its current best full key.
    fn rerank(&mut self, cell: usize, keys: &KeyPlan, cells: &Cells) {
        if let Some(old) = self.entry[cell].take() {
            self.order.remove(&(old, cell));
        }
        let Some((local, _)) = self.classes[cell].first_key_value() else {
            return;
        };
        let loads = &self.loads;
        let full = keys.full_key(local, |a| cells.cell_value(cell, a).map(|v| loads[a][v]));
        self.order.insert((full, cell));
        self.entry[cell] = Some(full);
    }
}
