//! Placement input of CreateService / UpdateService / RunTask: validating the ECS
//! `placementStrategy` / `placementConstraints` (with the scheduler's one parser), and turning a
//! service's stored placement into a scheduler spec.

use crate::error::{Error, Result};
use crate::store::command::Placement;
use berth_proto::model::{PlacementConstraint, PlacementStrategy, TaskDefinition};
use berth_proto::v1;
use berth_scheduler::{Constraint, PlacementSpec, Strategy};

use berth_scheduler::MAX_CONSTRAINTS;

/// Validates the request's strategies and constraints; answers them in ECS shape (canonical
/// `type`/`field` spelling) for storing.
pub fn from_request(
    strategies: &[v1::PlacementStrategy],
    constraints: &[v1::PlacementConstraint],
) -> Result<Placement> {
    let mut out = Placement::default();
    for (i, s) in strategies.iter().enumerate() {
        let parsed = Strategy::from_parts(&s.r#type, Some(s.field.as_str()))
            .map_err(|e| Error::invalid(format!("placementStrategy[{i}]: {e}")))?;
        out.strategy.push(PlacementStrategy {
            kind: parsed.type_name().to_string(),
            field: parsed.field(),
        });
    }
    berth_scheduler::validate_strategies(&strategy_list(&out.strategy)?)
        .map_err(|e| Error::invalid(format!("placementStrategy: {e}")))?;
    for (i, c) in constraints.iter().enumerate() {
        let expr = (!c.expression.is_empty()).then_some(c.expression.as_str());
        let parsed = Constraint::from_parts(&c.r#type, expr)
            .map_err(|e| Error::invalid(format!("placementConstraints[{i}]: {e}")))?;
        out.constraints.push(PlacementConstraint {
            kind: parsed.type_name().to_string(),
            expression: parsed.expression(),
        });
    }
    if out.constraints.len() > MAX_CONSTRAINTS {
        return Err(Error::invalid(format!(
            "placementConstraints: {} given; at most {MAX_CONSTRAINTS} are allowed (including the task definition's).",
            out.constraints.len()
        )));
    }
    Ok(out)
}

fn strategy_list(stored: &[PlacementStrategy]) -> Result<Vec<Strategy>> {
    stored
        .iter()
        .map(|s| {
            Strategy::from_parts(&s.kind, s.field.as_deref())
                .map_err(|e| Error::invalid(format!("placementStrategy: {e}")))
        })
        .collect()
}

/// The scheduler spec for launching `def` with a stored placement.
pub fn spec(placement: &Placement, def: &TaskDefinition) -> Result<PlacementSpec> {
    crate::orchestrator::placement::spec(&placement.strategy, &placement.constraints, def)
        .map_err(Error::invalid)
}

/// Checks a task definition's placement constraints (memberOf only, with a valid expression).
pub fn check_taskdef(def: &TaskDefinition) -> Result<()> {
    for (i, c) in def.placement_constraints.iter().flatten().enumerate() {
        Constraint::from_parts(&c.kind, c.expression.as_deref())
            .map_err(|e| Error::invalid(format!("placementConstraints[{i}]: {e}")))?;
    }
    Ok(())
}
