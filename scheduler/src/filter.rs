//! Feasibility filters: the binding first stage of the placement pipeline (ECS-NOTES §2.1).
//!
//! [`PIPELINE`] lists the filters in the order they run; an instance is rejected by the first
//! filter it fails and counted against that filter's [`FailureReason`]. Order:
//!
//! 1. `INACTIVE` — status is not ACTIVE (DRAINING or deregistered). Berth reports this apart
//!    from `AGENT`: a draining instance is the operator's intent, a disconnected agent is a fault,
//!    and the fix differs.
//! 2. `AGENT` — the agent is not connected.
//! 3. `RESOURCE:CPU`, 4. `RESOURCE:MEMORY` — not enough unreserved units / MiB.
//! 5. `RESOURCE:PORTS` — a static host port is taken, or the instance would exceed
//!    [`MAX_RESERVED_PORTS`].
//!
//! Each filter also says how far a rejected instance is from passing (`shortfall`) and what it
//! lacks in the words of ECS's service events, so the plan can name the closest instance.
//! Constraints (`constraint/`: `ATTRIBUTE` for memberOf, `DISTINCT_INSTANCE`) run after these,
//! in the order the caller listed them; `plan::filters` builds the full list per call.

use std::fmt;

use crate::view::{InstanceView, TaskRequest};

/// Why a task could not be placed. `Display` gives the ECS token (`RESOURCE:CPU`, …).
/// Ordered by pipeline position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// The snapshot holds no container instance at all.
    Missing,
    /// Instance status is not ACTIVE (DRAINING or INACTIVE).
    Inactive,
    /// Instance agent is not connected.
    Agent,
    /// Not enough unreserved CPU units.
    Cpu,
    /// Not enough unreserved memory.
    Memory,
    /// A required static host port is taken, or the reserved-port limit would be exceeded.
    Ports,
    /// A `memberOf` constraint's expression does not hold for the instance.
    Attribute,
    /// A `distinctInstance` constraint: the instance already runs a task of the group.
    DistinctInstance,
}

impl FailureReason {
    /// The ECS wire token.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Missing => "MISSING",
            FailureReason::Inactive => "INACTIVE",
            FailureReason::Agent => "AGENT",
            FailureReason::Cpu => "RESOURCE:CPU",
            FailureReason::Memory => "RESOURCE:MEMORY",
            FailureReason::Ports => "RESOURCE:PORTS",
            FailureReason::Attribute => "ATTRIBUTE",
            FailureReason::DistinctInstance => "DISTINCT_INSTANCE",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ECS allows at most 100 reserved host ports per container instance, the agent's defaults
/// included (ECS-NOTES §1.4.1); dynamic ports are not counted.
pub const MAX_RESERVED_PORTS: usize = 100;

/// One feasibility check.
pub(crate) trait Filter: Sync {
    fn reason(&self) -> FailureReason;
    fn admits(&self, inst: &InstanceView, task: &TaskRequest) -> bool;
    /// How far a rejected instance is from passing; smaller is closer. Only compared between
    /// instances rejected by this same filter.
    fn shortfall(&self, inst: &InstanceView, task: &TaskRequest) -> i64;
    /// What a rejected instance lacks, completing "The closest matching container-instance <id> …".
    fn lack(&self, inst: &InstanceView, task: &TaskRequest) -> String;
    /// The answer depends only on the instance as the caller gave it, not on tasks placed
    /// earlier in the batch (status, agent, a `memberOf` without `task:group` /
    /// `runningTasksCount`). The indexed pass evaluates such filters once per instance and shape.
    fn is_static(&self) -> bool {
        false
    }
}

/// The filters, in the order they run.
pub(crate) static PIPELINE: [&dyn Filter; 5] =
    [&ActiveFilter, &AgentFilter, &CpuFilter, &MemoryFilter, &PortsFilter];

/// Index in `filters` of the first filter `inst` fails, or `None` if it passes them all.
pub(crate) fn first_rejection(
    filters: &[&dyn Filter],
    inst: &InstanceView,
    task: &TaskRequest,
) -> Option<usize> {
    filters.iter().position(|f| !f.admits(inst, task))
}

struct ActiveFilter;

impl Filter for ActiveFilter {
    fn reason(&self) -> FailureReason {
        FailureReason::Inactive
    }
    fn admits(&self, inst: &InstanceView, _: &TaskRequest) -> bool {
        inst.active
    }
    fn shortfall(&self, _: &InstanceView, _: &TaskRequest) -> i64 {
        1
    }
    fn lack(&self, _: &InstanceView, _: &TaskRequest) -> String {
        "is not ACTIVE (it is draining or deregistered)".into()
    }
    fn is_static(&self) -> bool {
        true
    }
}

struct AgentFilter;

impl Filter for AgentFilter {
    fn reason(&self) -> FailureReason {
        FailureReason::Agent
    }
    fn admits(&self, inst: &InstanceView, _: &TaskRequest) -> bool {
        inst.agent_connected
    }
    fn shortfall(&self, _: &InstanceView, _: &TaskRequest) -> i64 {
        1
    }
    fn lack(&self, _: &InstanceView, _: &TaskRequest) -> String {
        "doesn't have the agent connected".into()
    }
    fn is_static(&self) -> bool {
        true
    }
}

struct CpuFilter;

impl Filter for CpuFilter {
    fn reason(&self) -> FailureReason {
        FailureReason::Cpu
    }
    fn admits(&self, inst: &InstanceView, task: &TaskRequest) -> bool {
        inst.remaining_cpu >= task.cpu
    }
    fn shortfall(&self, inst: &InstanceView, task: &TaskRequest) -> i64 {
        task.cpu.saturating_sub(inst.remaining_cpu)
    }
    fn lack(&self, _: &InstanceView, _: &TaskRequest) -> String {
        "has insufficient CPU units available".into()
    }
}

struct MemoryFilter;

impl Filter for MemoryFilter {
    fn reason(&self) -> FailureReason {
        FailureReason::Memory
    }
    fn admits(&self, inst: &InstanceView, task: &TaskRequest) -> bool {
        inst.remaining_memory >= task.memory
    }
    fn shortfall(&self, inst: &InstanceView, task: &TaskRequest) -> i64 {
        task.memory.saturating_sub(inst.remaining_memory)
    }
    fn lack(&self, _: &InstanceView, _: &TaskRequest) -> String {
        "has insufficient memory available".into()
    }
}

struct PortsFilter;

impl PortsFilter {
    fn conflicts(inst: &InstanceView, task: &TaskRequest) -> usize {
        task.static_ports.iter().filter(|p| inst.used_ports.contains(p)).count()
    }

    /// Ports beyond [`MAX_RESERVED_PORTS`] if the task's (non-conflicting, distinct) ports were added.
    fn overflow(inst: &InstanceView, task: &TaskRequest) -> usize {
        if task.static_ports.is_empty() {
            return 0;
        }
        let mut new: Vec<u16> =
            task.static_ports.iter().copied().filter(|p| !inst.used_ports.contains(p)).collect();
        new.sort_unstable();
        new.dedup();
        (inst.used_ports.len() + new.len()).saturating_sub(MAX_RESERVED_PORTS)
    }
}

impl Filter for PortsFilter {
    fn reason(&self) -> FailureReason {
        FailureReason::Ports
    }
    fn admits(&self, inst: &InstanceView, task: &TaskRequest) -> bool {
        Self::conflicts(inst, task) == 0 && Self::overflow(inst, task) == 0
    }
    fn shortfall(&self, inst: &InstanceView, task: &TaskRequest) -> i64 {
        (Self::conflicts(inst, task) + Self::overflow(inst, task)) as i64
    }
    fn lack(&self, inst: &InstanceView, task: &TaskRequest) -> String {
        if Self::conflicts(inst, task) > 0 {
            "is already using a port required by your task".into()
        } else {
            format!("has no room for more reserved host ports (limit {MAX_RESERVED_PORTS})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> InstanceView {
        InstanceView {
            id: "i".into(),
            active: true,
            agent_connected: true,
            remaining_cpu: 1024,
            remaining_memory: 1024,
            used_ports: [22, 2375].into(),
            ..Default::default()
        }
    }

    fn task(cpu: i64, memory: i64, ports: &[u16]) -> TaskRequest {
        TaskRequest { group: "g".into(), cpu, memory, static_ports: ports.to_vec() }
    }

    #[test]
    fn failure_reasons_display_ecs_tokens() {
        let tokens: Vec<String> = [
            FailureReason::Missing,
            FailureReason::Inactive,
            FailureReason::Agent,
            FailureReason::Cpu,
            FailureReason::Memory,
            FailureReason::Ports,
            FailureReason::Attribute,
            FailureReason::DistinctInstance,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            tokens,
            [
                "MISSING",
                "INACTIVE",
                "AGENT",
                "RESOURCE:CPU",
                "RESOURCE:MEMORY",
                "RESOURCE:PORTS",
                "ATTRIBUTE",
                "DISTINCT_INSTANCE"
            ]
        );
    }

    #[test]
    fn pipeline_order_matches_failure_reason_order() {
        let reasons: Vec<FailureReason> = PIPELINE.iter().map(|f| f.reason()).collect();
        let mut sorted = reasons.clone();
        sorted.sort();
        assert_eq!(reasons, sorted);
    }

    fn first_rejection(inst: &InstanceView, task: &TaskRequest) -> Option<usize> {
        super::first_rejection(&PIPELINE, inst, task)
    }

    #[test]
    fn healthy_instance_with_room_passes_every_filter() {
        assert_eq!(first_rejection(&healthy(), &task(1024, 1024, &[80])), None);
    }

    #[test]
    fn first_failing_filter_rejects() {
        let mut inst = healthy();
        inst.active = false;
        inst.agent_connected = false;
        let t = task(4096, 4096, &[22]);
        assert_eq!(PIPELINE[first_rejection(&inst, &t).unwrap()].reason(), FailureReason::Inactive);
        inst.active = true;
        assert_eq!(PIPELINE[first_rejection(&inst, &t).unwrap()].reason(), FailureReason::Agent);
        inst.agent_connected = true;
        assert_eq!(PIPELINE[first_rejection(&inst, &t).unwrap()].reason(), FailureReason::Cpu);
        let t = task(1, 4096, &[22]);
        assert_eq!(PIPELINE[first_rejection(&inst, &t).unwrap()].reason(), FailureReason::Memory);
        let t = task(1, 1, &[22]);
        assert_eq!(PIPELINE[first_rejection(&inst, &t).unwrap()].reason(), FailureReason::Ports);
    }

    #[test]
    fn ports_filter_enforces_reserved_port_limit() {
        let mut inst = healthy();
        inst.used_ports = (1000..1000 + MAX_RESERVED_PORTS as u16 - 1).collect();
        assert!(PortsFilter.admits(&inst, &task(0, 0, &[80, 80])));
        assert!(!PortsFilter.admits(&inst, &task(0, 0, &[80, 81])));
        assert!(PortsFilter.lack(&inst, &task(0, 0, &[80, 81])).contains("limit 100"));
        // A task without static ports is never rejected for ports.
        inst.used_ports = (1000..1200).collect();
        assert!(PortsFilter.admits(&inst, &task(0, 0, &[])));
    }
}
