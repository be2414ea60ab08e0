//! The partition of a snapshot into cells for `spread(attribute:…)`.
//!
//! A cell is the set of instances sharing one value (or the lack of one) of every attribute the
//! key plan spreads over — with the usual `spread(attribute:ecs.availability-zone)`, one cell
//! per zone. Every instance of a cell has the same cell scores, so the indexed pass stores those
//! once per cell and, when a placement changes a value's load, re-ranks only the cells holding
//! that value ([`Cells::sharing`]).
//!
//! Built once per pass in O(instances × attributes) (values are interned by hashing); read-only
//! afterwards. Instance indices are [`ClusterState`] positions (id order).

use std::collections::HashMap;

use crate::view::ClusterState;

#[derive(Debug)]
pub(crate) struct Cells {
    /// `[attribute][instance]` → the instance's value id, `None` without the attribute.
    value_of: Vec<Vec<Option<usize>>>,
    /// Distinct values per attribute.
    values: Vec<usize>,
    /// Instance → its cell.
    cell_of: Vec<usize>,
    /// `[cell][attribute]` → the cell's value id.
    cell_values: Vec<Vec<Option<usize>>>,
    /// `[attribute][value]` → the cells with that value, ascending.
    cells_with: Vec<Vec<Vec<usize>>>,
}

impl Cells {
    pub(crate) fn new(attributes: &[String], cluster: &ClusterState) -> Cells {
        let mut values = Vec::with_capacity(attributes.len());
        let value_of: Vec<Vec<Option<usize>>> = attributes
            .iter()
            .map(|name| {
                let mut ids: HashMap<&str, usize> = HashMap::new();
                let of = cluster
                    .instances()
                    .iter()
                    .map(|inst| {
                        let value = inst.attributes.get(name)?;
                        let next = ids.len();
                        Some(*ids.entry(value.as_str()).or_insert(next))
                    })
                    .collect();
                values.push(ids.len());
                of
            })
            .collect();
        let mut cell_ids: HashMap<Vec<Option<usize>>, usize> = HashMap::new();
        let mut cell_values = Vec::new();
        let cell_of = (0..cluster.len())
            .map(|i| {
                let tuple: Vec<Option<usize>> = value_of.iter().map(|of| of[i]).collect();
                *cell_ids.entry(tuple).or_insert_with_key(|tuple| {
                    cell_values.push(tuple.clone());
                    cell_values.len() - 1
                })
            })
            .collect();
        let mut cells_with: Vec<Vec<Vec<usize>>> =
            values.iter().map(|&n| vec![vec![]; n]).collect();
        for (cell, tuple) in cell_values.iter().enumerate() {
            for (a, value) in tuple.iter().enumerate() {
                if let Some(v) = value {
                    cells_with[a][*v].push(cell);
                }
            }
        }
        Cells { value_of, values, cell_of, cell_values, cells_with }
    }

    pub(crate) fn len(&self) -> usize {
        self.cell_values.len()
    }

    pub(crate) fn attributes(&self) -> usize {
        self.values.len()
    }

    /// Distinct values of attribute `a`.
    pub(crate) fn values(&self, a: usize) -> usize {
        self.values[a]
    }

    pub(crate) fn cell_of(&self, instance: usize) -> usize {
        self.cell_of[instance]
    }

    /// Instance `i`'s value id of attribute `a`.
    pub(crate) fn value_of(&self, a: usize, instance: usize) -> Option<usize> {
        self.value_of[a][instance]
    }

    /// Cell `c`'s value id of attribute `a`.
    pub(crate) fn cell_value(&self, cell: usize, a: usize) -> Option<usize> {
        self.cell_values[cell][a]
    }

    /// The cells whose value of attribute `a` is `value`.
    pub(crate) fn sharing(&self, a: usize, value: usize) -> &[usize] {
        &self.cells_with[a][value]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::InstanceView;

    fn inst(id: &str, az: Option<&str>, rack: &str) -> InstanceView {
        let mut v = InstanceView { id: id.into(), ..Default::default() };
        if let Some(az) = az {
            v.attributes.insert("az".into(), az.into());
        }
        v.attributes.insert("rack".into(), rack.into());
        v
    }

    #[test]
    fn cells_group_instances_by_every_spread_attribute() {
        let cluster = ClusterState::new([
            inst("a", Some("1a"), "r1"),
            inst("b", Some("1a"), "r2"),
            inst("c", Some("1a"), "r1"),
            inst("d", None, "r1"),
        ]);
        let cells = Cells::new(&["az".into(), "rack".into()], &cluster);
        assert_eq!(cells.len(), 3);
        assert_eq!(cells.cell_of(0), cells.cell_of(2));
        assert_ne!(cells.cell_of(0), cells.cell_of(1));
        assert_eq!(cells.value_of(0, 3), None);
        assert_eq!((cells.values(0), cells.values(1)), (1, 2));
        // Value r1 of rack is shared by the (1a, r1) and (none, r1) cells.
        let r1 = cells.value_of(1, 0).unwrap();
        assert_eq!(cells.sharing(1, r1), [cells.cell_of(0), cells.cell_of(3)]);
        assert_eq!(cells.cell_value(cells.cell_of(3), 0), None);
    }

    #[test]
    fn without_spread_attributes_every_instance_is_in_one_cell() {
        let cluster = ClusterState::new([inst("a", None, "r1"), inst("b", None, "r2")]);
        let cells = Cells::new(&[], &cluster);
        assert_eq!((cells.len(), cells.attributes()), (1, 0));
        assert_eq!((cells.cell_of(0), cells.cell_of(1)), (0, 0));
    }
}
