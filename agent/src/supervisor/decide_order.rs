//! Container ordering inside a task (ECS-NOTES §1.4.3): which container may be created or
//! started now, which dependency can never be met, and which running containers may be stopped.
//! Pure, like `decide.rs`: time comes in as `now` and as the instants at which the worker first
//! saw each container started.
//!
//! * Start gates follow the ECS agent's dependency graph (`agent/engine/dependencygraph`):
//!   `START` lets the dependent be *created* once its target exists and *started* once the
//!   target has started; `COMPLETE` / `SUCCESS` / `HEALTHY` hold both until the target has
//!   exited / exited 0 / reports HEALTHY. A `links` entry is an implicit `START` dependency;
//!   a `volumesFrom[].sourceContainer` is an implicit `CREATED` one (Docker needs the source to
//!   exist when the dependent is created; it need not run, as the ECS agent's
//!   `verifyVolumeDependencies` allows).
//! * A dependency that can never be met — a `SUCCESS` target that exited non-zero, a `HEALTHY`
//!   target that exited, or a target's `startTimeout` (counted from the target's start, and
//!   only for COMPLETE / SUCCESS / HEALTHY, as the ECS agent does) running out before the
//!   dependent was created — fails the task (see [`blocked`]). Without `startTimeout` the
//!   dependent waits as long as it takes (the ECS agent has no default either).
//! * Shutdown is the reverse of the start order: a container is stopped only once every
//!   container that depends on it (`dependsOn`, `links` or `volumesFrom`, as the ECS agent's
//!   `verifyShutdownOrder`) has stopped (see [`stoppable`]).
//! * A non-essential container whose start failed (remembered by the worker, passed in as
//!   `start_failed`) counts as exited without an exit code: it is never started again.

use super::spec::TaskPlan;
use crate::runtime::{ContainerHealth, ContainerInfo, ContainerState};
use berth_proto::model::TaskDefinition;
use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

/// An ECS `dependsOn[].condition`, or the internal `Created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Internal, never parsed from a definition: the target exists (for creating and for
    /// starting the dependent). Implied by `volumesFrom`.
    Created,
    Start,
    Complete,
    Success,
    Healthy,
}

impl Condition {
    pub fn parse(s: &str) -> Option<Condition> {
        match s {
            "START" => Some(Condition::Start),
            "COMPLETE" => Some(Condition::Complete),
            "SUCCESS" => Some(Condition::Success),
            "HEALTHY" => Some(Condition::Healthy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Created => "CREATED",
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }

    /// Conditions the target's `startTimeout` applies to (the ECS agent's
    /// `hasDependencyTimedOut`).
    fn times_out(self) -> bool {
        !matches!(self, Condition::Created | Condition::Start)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "Container `target` (an index into the plan) must reach `condition` first."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    pub target: usize,
    pub condition: Condition,
}

/// Per container of `def` (in definition order): its `dependsOn` entries plus an implicit
/// `START` dependency for each `links` target and an implicit `CREATED` one for each
/// `volumesFrom[].sourceContainer`, when not already named. Refuses what registration
/// refuses (an unknown container or condition, a cycle), so that a definition that slipped past
/// it can never leave a task waiting forever.
pub fn plan_dependencies(def: &TaskDefinition) -> Result<Vec<Vec<Dependency>>, String> {
    let index: HashMap<&str, usize> =
        def.container_definitions.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut all = Vec::with_capacity(def.container_definitions.len());
    for c in &def.container_definitions {
        let mut deps: Vec<Dependency> = Vec::new();
        for d in c.depends_on.iter().flatten() {
            let target = *index.get(d.container_name.as_str()).ok_or_else(|| {
                format!(
                    "container {}: dependsOn names unknown container {}",
                    c.name, d.container_name
                )
            })?;
            let condition = Condition::parse(&d.condition).ok_or_else(|| {
                format!("container {}: dependsOn condition {} is not one of START, COMPLETE, SUCCESS, HEALTHY", c.name, d.condition)
            })?;
            deps.push(Dependency { target, condition });
        }
        for link in c.links.iter().flatten() {
            let name = link.split(':').next().unwrap_or(link);
            let target = *index.get(name).ok_or_else(|| {
                format!("container {}: links names unknown container {name}", c.name)
            })?;
            if !deps.iter().any(|d| d.target == target) {
                deps.push(Dependency { target, condition: Condition::Start });
            }
        }
        for name in c.volumes_from.iter().flatten().filter_map(|v| v.source_container.as_deref()) {
            let target = *index.get(name).ok_or_else(|| {
                format!("container {}: volumesFrom names unknown container {name}", c.name)
            })?;
            if !deps.iter().any(|d| d.target == target) {
                deps.push(Dependency { target, condition: Condition::Created });
            }
        }
        all.push(deps);
    }
    if let Some(name) = cycle_member(&all) {
        return Err(format!(
            "container {}: dependsOn/links/volumesFrom form a cycle",
            def.container_definitions[name].name
        ));
    }
    Ok(all)
}

/// A container on a dependency cycle, if any (Kahn's algorithm: what never becomes free).
fn cycle_member(deps: &[Vec<Dependency>]) -> Option<usize> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut free: Vec<usize> = (0..n).filter(|i| waiting[*i] == 0).collect();
    let mut done = vec![false; n];
    while let Some(t) = free.pop() {
        done[t] = true;
        for (i, d) in deps.iter().enumerate() {
            let hits = d.iter().filter(|d| d.target == t).count();
            if hits > 0 && !done[i] {
                waiting[i] -= hits;
                if waiting[i] == 0 {
                    free.push(i);
                }
            }
        }
    }
    (0..n).find(|i| !done[*i])
}

/// What the runtime shows of each plan container, and since when it runs (for `startTimeout`).
pub struct OrderView<'a> {
    pub plan: &'a TaskPlan,
    /// By plan index.
    pub observed: Vec<Option<&'a ContainerInfo>>,
    /// By plan index: when the worker first saw the container started (running or exited).
    pub started_at: &'a [Option<Instant>],
    /// By plan index: why starting the (non-essential) container failed, if it did.
    pub start_failed: &'a [Option<String>],
    pub now: Instant,
}

impl<'a> OrderView<'a> {
    pub fn new(
        plan: &'a TaskPlan,
        by_name: &HashMap<&str, &'a ContainerInfo>,
        started_at: &'a [Option<Instant>],
        start_failed: &'a [Option<String>],
        now: Instant,
    ) -> Self {
        let observed =
            plan.containers.iter().map(|c| by_name.get(c.name.as_str()).copied()).collect();
        OrderView { plan, observed, started_at, start_failed, now }
    }

    /// Why starting container `i` failed, if it did (it then counts as exited).
    pub fn start_failure(&self, i: usize) -> Option<&'a str> {
        self.start_failed.get(i)?.as_deref()
    }

    /// The runtime's state of container `i`; `Exited` for one whose start failed (Docker
    /// leaves it `created`).
    pub fn state(&self, i: usize) -> Option<ContainerState> {
        let state = self.observed.get(i).copied().flatten().map(|c| c.state);
        match state {
            Some(_) if self.start_failure(i).is_some() => Some(ContainerState::Exited),
            s => s,
        }
    }

    /// Container `i` has been started (it runs, or ran and exited).
    pub fn has_started(&self, i: usize) -> bool {
        matches!(self.state(i), Some(ContainerState::Running | ContainerState::Exited))
    }

    /// The target's start timeout runs out at this instant (if it has one and has started).
    fn deadline(&self, target: usize) -> Option<Instant> {
        let timeout = self.plan.containers.get(target)?.start_timeout?;
        Some(self.started_at.get(target).copied().flatten()? + timeout)
    }
}

/// Whether container `i` may take its next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    Wait,
}

/// Whether container `i` may be created (`for_start` false) or started (`for_start` true) now.
pub fn gate(v: &OrderView<'_>, i: usize, for_start: bool) -> Gate {
    let Some(c) = v.plan.containers.get(i) else {
        return Gate::Wait;
    };
    let met = c.depends_on.iter().all(|d| {
        let target = v.observed.get(d.target).copied().flatten();
        let state = v.state(d.target);
        match d.condition {
            Condition::Created => target.is_some(),
            Condition::Start if for_start => v.has_started(d.target),
            Condition::Start => target.is_some(),
            Condition::Complete => state == Some(ContainerState::Exited),
            Condition::Success => {
                state == Some(ContainerState::Exited)
                    && target.is_some_and(|t| t.exit_code == Some(0))
            }
            Condition::Healthy => target.is_some_and(|t| {
                state == Some(ContainerState::Running) && t.health == Some(ContainerHealth::Healthy)
            }),
        }
    });
    if met { Gate::Open } else { Gate::Wait }
}

/// The first dependency of a container not yet created that can never be met, as the task's
/// `stoppedReason` (`DependencyError: …`). `None` while every dependency may still be met.
pub fn blocked(v: &OrderView<'_>) -> Option<String> {
    for (i, c) in v.plan.containers.iter().enumerate() {
        if v.observed[i].is_some() {
            continue; // created: its dependencies were met (ECS checks them before create)
        }
        for d in &c.depends_on {
            let target = &v.plan.containers[d.target];
            let failed = v.start_failure(d.target);
            let why = match (v.observed.get(d.target).copied().flatten(), d.condition) {
                (Some(_), Condition::Success | Condition::Healthy) if failed.is_some() => {
                    Some(format!("failed to start ({})", failed.unwrap_or_default()))
                }
                (Some(t), Condition::Success) if t.state == ContainerState::Exited => {
                    match t.exit_code {
                        Some(0) | None => None,
                        Some(code) => Some(format!("exited with code {code}")),
                    }
                }
                (Some(t), Condition::Healthy) if t.state == ContainerState::Exited => {
                    Some("exited without becoming HEALTHY".to_string())
                }
                (Some(_), cond)
                    if v.state(d.target) != Some(ContainerState::Exited) && cond.times_out() =>
                {
                    match (v.deadline(d.target), target.start_timeout) {
                        (Some(at), Some(timeout)) if v.now >= at => Some(format!(
                            "did not reach {cond} within its startTimeout of {}s",
                            timeout.as_secs()
                        )),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(why) = why {
                return Some(format!(
                    "DependencyError: container {} cannot start: it depends on {} ({}), which {why}",
                    c.name, target.name, d.condition
                ));
            }
        }
    }
    None
}

/// The earliest instant at which a `startTimeout` could run out, so a waiting worker wakes up
/// for it.
pub fn next_deadline(v: &OrderView<'_>) -> Option<Instant> {
    v.plan
        .containers
        .iter()
        .enumerate()
        .filter(|(i, _)| v.observed[*i].is_none())
        .flat_map(|(_, c)| c.depends_on.iter())
        .filter(|d| d.condition.times_out() && v.state(d.target) != Some(ContainerState::Exited))
        .filter_map(|d| v.deadline(d.target))
        .min()
}

/// Whether container `i` may be stopped now: every container that depends on it (explicitly or
/// by a link) is no longer running.
pub fn stoppable(v: &OrderView<'_>, i: usize) -> bool {
    v.plan.containers.iter().enumerate().all(|(j, c)| {
        !c.depends_on.iter().any(|d| d.target == i)
            || !matches!(v.state(j), Some(ContainerState::Running | ContainerState::Other))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        ContainerSpec, HealthCheckSpec, LABEL_CONTAINER_NAME, LABEL_STOP_TIMEOUT,
    };
    use crate::supervisor::decide::{
        Desired, Phase, STOP_CODE_FAILED_TO_START, Step, View, decide,
    };
    use crate::supervisor::spec::PlannedContainer;
    use berth_proto::model::{ContainerDefinition, ContainerDependency, VolumeFrom};
    use std::time::Duration;

    struct C {
        name: &'static str,
        essential: bool,
        deps: Vec<(&'static str, &'static str)>,
        links: Vec<&'static str>,
        volumes_from: Vec<&'static str>,
        start_timeout: Option<i64>,
        checked: bool,
    }

    fn c(name: &'static str, essential: bool) -> C {
        C {
            name,
            essential,
            deps: Vec::new(),
            links: Vec::new(),
            volumes_from: Vec::new(),
            start_timeout: None,
            checked: false,
        }
    }

    impl C {
        fn on(mut self, target: &'static str, condition: &'static str) -> C {
            self.deps.push((target, condition));
            self
        }
        fn link(mut self, target: &'static str) -> C {
            self.links.push(target);
            self
        }
        fn volumes_from(mut self, source: &'static str) -> C {
            self.volumes_from.push(source);
            self
        }
        fn timeout(mut self, secs: i64) -> C {
            self.start_timeout = Some(secs);
            self
        }
        fn checked(mut self) -> C {
            self.checked = true;
            self
        }
    }

    fn def(containers: &[C]) -> TaskDefinition {
        TaskDefinition {
            family: "f".into(),
            container_definitions: containers
                .iter()
                .map(|c| ContainerDefinition {
                    name: c.name.into(),
                    image: "img".into(),
                    essential: Some(c.essential),
                    depends_on: Some(
                        c.deps
                            .iter()
                            .map(|(t, cond)| ContainerDependency {
                                container_name: t.to_string(),
                                condition: cond.to_string(),
                            })
                            .collect(),
                    ),
                    links: Some(c.links.iter().map(|l| format!("{l}:{l}")).collect()),
                    volumes_from: Some(
                        c.volumes_from
                            .iter()
                            .map(|s| VolumeFrom {
                                source_container: Some(s.to_string()),
                                read_only: None,
                            })
                            .collect(),
                    ),
                    start_timeout: c.start_timeout,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn plan(containers: &[C]) -> TaskPlan {
        let deps = plan_dependencies(&def(containers)).expect("plannable");
        TaskPlan {
            task_id: "t".into(),
            containers: containers
                .iter()
                .zip(deps)
                .map(|(c, depends_on)| PlannedContainer {
                    name: c.name.into(),
                    essential: c.essential,
                    spec: ContainerSpec {
                        name: format!("berth-x-{}", c.name),
                        image: "img".into(),
                        health_check: c.checked.then(|| HealthCheckSpec {
                            test: vec!["CMD".into(), "true".into()],
                            interval: Duration::from_secs(5),
                            timeout: Duration::from_secs(2),
                            retries: 1,
                            start_period: Duration::ZERO,
                        }),
                        ..Default::default()
                    },
                    depends_on,
                    start_timeout: c.start_timeout.map(|s| Duration::from_secs(s as u64)),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn info(name: &str, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{name}"),
            name: format!("berth-x-{name}"),
            image: "img".into(),
            labels: [
                (LABEL_CONTAINER_NAME.to_string(), name.to_string()),
                (LABEL_STOP_TIMEOUT.to_string(), "7".to_string()),
            ]
            .into_iter()
            .collect(),
            state,
            exit_code: None,
            ports: Vec::new(),
            error: None,
            health: None,
        }
    }

    fn exited(name: &str, code: i64) -> ContainerInfo {
        ContainerInfo { exit_code: Some(code), ..info(name, ContainerState::Exited) }
    }

    fn healthy(name: &str) -> ContainerInfo {
        ContainerInfo {
            health: Some(ContainerHealth::Healthy),
            ..info(name, ContainerState::Running)
        }
    }

    /// A simulated clock: containers seen started at `t0`, decisions made at `t0 + elapsed`.
    struct Sim {
        plan: TaskPlan,
        t0: Instant,
        started: Vec<Option<Instant>>,
        start_failed: Vec<Option<String>>,
    }

    impl Sim {
        fn new(containers: &[C]) -> Sim {
            let plan = plan(containers);
            let n = plan.containers.len();
            Sim { plan, t0: Instant::now(), started: vec![None; n], start_failed: vec![None; n] }
        }

        /// Marks the started containers of `observed` as started at `t0` (as the worker does).
        fn decide_at(
            &mut self,
            phase: Phase,
            desired: Desired,
            observed: &[ContainerInfo],
            elapsed: Duration,
        ) -> (Option<Phase>, Step) {
            for (i, c) in self.plan.containers.iter().enumerate() {
                let started = observed.iter().any(|o| {
                    o.label(LABEL_CONTAINER_NAME) == Some(c.name.as_str())
                        && matches!(o.state, ContainerState::Running | ContainerState::Exited)
                });
                if started && self.started[i].is_none() {
                    self.started[i] = Some(self.t0);
                }
            }
            let ready = vec![true; self.plan.containers.len()];
            let v = View {
                desired,
                plan: Some(&self.plan),
                observed,
                images_ready: &ready,
                started_at: &self.started,
                start_failed: &self.start_failed,
                now: self.t0 + elapsed,
                remove_when_stopped: false,
                controller_stop: (None, None),
            };
            decide(&v, &phase)
        }

        fn step(&mut self, observed: &[ContainerInfo]) -> (Option<Phase>, Step) {
            self.decide_at(Phase::Starting, Desired::Running, observed, Duration::ZERO)
        }
    }

    fn started(step: &Step) -> Option<&str> {
        match step {
            Step::Start(_, id) => id.strip_prefix("id-"),
            _ => None,
        }
    }

    /// stopCode and stoppedReason of a task that is stopping or stopped.
    fn failure(phase: Option<Phase>) -> (Option<String>, String) {
        match phase {
            Some(
                Phase::Stopping { stop_code, reason, .. } | Phase::Stopped { stop_code, reason },
            ) => (stop_code, reason.unwrap_or_default()),
            other => panic!("expected Stopping or Stopped, got {other:?}"),
        }
    }

    #[test]
    fn start_condition_creates_after_target_exists_and_starts_after_it_started() {
        // `app` (index 0) depends on `db` (index 1) with START.
        let mut sim = Sim::new(&[c("app", true).on("db", "START"), c("db", true)]);
        assert_eq!(sim.step(&[]).1, Step::Create(1), "db first, although app comes first");
        assert_eq!(sim.step(&[info("db", ContainerState::Created)]).1, Step::Create(0));
        let both_created =
            [info("app", ContainerState::Created), info("db", ContainerState::Created)];
        assert_eq!(started(&sim.step(&both_created).1), Some("db"));
        let db_runs = [info("app", ContainerState::Created), info("db", ContainerState::Running)];
        assert_eq!(started(&sim.step(&db_runs).1), Some("app"));
    }

    #[test]
    fn links_imply_a_start_dependency() {
        let p = plan(&[c("web", true).link("db"), c("db", true)]);
        assert_eq!(
            p.containers[0].depends_on,
            vec![Dependency { target: 1, condition: Condition::Start }]
        );
        let mut sim = Sim::new(&[c("web", true).link("db"), c("db", true)]);
        assert_eq!(sim.step(&[]).1, Step::Create(1));
    }

    #[test]
    fn complete_condition_waits_for_an_exit_with_any_code() {
        let cs = || [c("app", true).on("init", "COMPLETE"), c("init", false)];
        let mut sim = Sim::new(&cs());
        assert_eq!(sim.step(&[]).1, Step::Create(1));
        assert_eq!(started(&sim.step(&[info("init", ContainerState::Created)]).1), Some("init"));
        assert_eq!(sim.step(&[info("init", ContainerState::Running)]).1, Step::Wait);
        assert_eq!(sim.step(&[exited("init", 1)]).1, Step::Create(0), "any exit code completes");
        let (phase, step) = sim.step(&[exited("init", 1), info("app", ContainerState::Running)]);
        assert_eq!(
            (phase, step),
            (Some(Phase::Running), Step::Wait),
            "a non-essential exit is fine"
        );
    }

    #[test]
    fn success_condition_waits_for_exit_code_zero() {
        let mut sim = Sim::new(&[c("app", true).on("init", "SUCCESS"), c("init", false)]);
        assert_eq!(sim.step(&[info("init", ContainerState::Running)]).1, Step::Wait);
        assert_eq!(sim.step(&[exited("init", 0)]).1, Step::Create(0));
    }

    #[test]
    fn success_target_exiting_non_zero_fails_the_task_before_the_dependent_starts() {
        let mut sim = Sim::new(&[c("app", true).on("init", "SUCCESS"), c("init", false)]);
        let (phase, step) = sim.step(&[exited("init", 1)]);
        let (code, reason) = failure(phase);
        assert_eq!(code.as_deref(), Some(STOP_CODE_FAILED_TO_START));
        assert_eq!(
            reason,
            "DependencyError: container app cannot start: it depends on init (SUCCESS), which \
             exited with code 1"
        );
        assert_eq!(step, Step::Wait, "nothing runs: straight to Stopped without a create");
    }

    #[test]
    fn healthy_condition_waits_for_a_healthy_verdict() {
        let mut sim = Sim::new(&[c("app", false).on("db", "HEALTHY"), c("db", true).checked()]);
        assert_eq!(sim.step(&[info("db", ContainerState::Running)]).1, Step::Wait);
        assert_eq!(sim.step(&[healthy("db")]).1, Step::Create(0));
        let (phase, _) = sim.step(&[exited("db", 0)]);
        let (_, reason) = failure(phase);
        assert!(reason.contains("Essential container"), "db is essential: {reason}");
        let mut sim = Sim::new(&[c("app", true).on("db", "HEALTHY"), c("db", false).checked()]);
        let (_, reason) = failure(sim.step(&[exited("db", 0)]).0);
        assert!(reason.contains("exited without becoming HEALTHY"), "{reason}");
    }

    #[test]
    fn start_timeout_of_the_target_fails_the_task_once_it_has_passed() {
        let cs = || [c("app", true).on("dep", "SUCCESS"), c("dep", false).timeout(5)];
        let mut sim = Sim::new(&cs());
        let running = [info("dep", ContainerState::Running)];
        let at = |s: u64| Duration::from_secs(s);
        let (p, step) = sim.decide_at(Phase::Starting, Desired::Running, &running, at(4));
        assert_eq!((p, step), (None, Step::Wait), "4 s of 5: still waiting");
        let by_name = crate::supervisor::decide::by_container_name(&running);
        let order = OrderView::new(&sim.plan, &by_name, &sim.started, &sim.start_failed, sim.t0);
        assert_eq!(next_deadline(&order), Some(sim.t0 + at(5)), "the worker wakes up for it");
        let (p, _) = sim.decide_at(Phase::Starting, Desired::Running, &running, at(5));
        let (code, reason) = failure(p);
        assert_eq!(code.as_deref(), Some(STOP_CODE_FAILED_TO_START));
        assert!(
            reason.contains(
                "dep (SUCCESS), which did not reach SUCCESS within its startTimeout of 5s"
            ),
            "{reason}"
        );
        // No timeout given: the dependent waits as long as it takes (as the ECS agent does).
        let mut patient = Sim::new(&[c("app", true).on("dep", "SUCCESS"), c("dep", false)]);
        let (p, step) = patient.decide_at(Phase::Starting, Desired::Running, &running, at(86_400));
        assert_eq!((p, step), (None, Step::Wait));
    }

    #[test]
    fn start_timeout_does_not_apply_to_start_conditions_or_created_dependents() {
        let mut sim = Sim::new(&[c("app", true).on("dep", "START"), c("dep", false).timeout(1)]);
        let obs = [info("app", ContainerState::Running), info("dep", ContainerState::Running)];
        let (p, _) =
            sim.decide_at(Phase::Starting, Desired::Running, &obs, Duration::from_secs(60));
        assert_eq!(p, Some(Phase::Running));
    }

    #[test]
    fn cycles_and_unknown_references_cannot_be_planned() {
        let d = def(&[c("a", true).on("b", "START"), c("b", true).link("a")]);
        let e = plan_dependencies(&d).err().unwrap_or_default();
        assert!(e.contains("form a cycle"), "{e}");
        let d = def(&[c("a", true).on("a", "START")]);
        assert!(plan_dependencies(&d).is_err(), "a self-dependency is a cycle");
        let d = def(&[c("a", true).on("zz", "START")]);
        assert!(plan_dependencies(&d).err().unwrap_or_default().contains("unknown container zz"));
        let d = def(&[c("a", true).on("b", "READY"), c("b", true)]);
        assert!(plan_dependencies(&d).err().unwrap_or_default().contains("READY"));
        let d = def(&[
            c("a", true).on("b", "START").on("c", "START"),
            c("b", true).on("c", "START"),
            c("c", true),
        ]);
        assert!(plan_dependencies(&d).is_ok(), "a diamond is no cycle");
    }

    #[test]
    fn stopping_goes_in_reverse_dependency_order() {
        // proxy -> app -> db (each depends on the next); all three run.
        let cs = [c("proxy", true).on("app", "START"), c("app", true).link("db"), c("db", true)];
        let mut sim = Sim::new(&cs);
        let stopping = || Phase::Stopping { stop_code: None, reason: None, reached_running: true };
        let ids = |step: Step| match step {
            Step::Stop(list) => list,
            other => panic!("expected Stop, got {other:?}"),
        };
        let all = [
            info("proxy", ContainerState::Running),
            info("app", ContainerState::Running),
            info("db", ContainerState::Running),
        ];
        let stop = |sim: &mut Sim, obs: &[ContainerInfo]| {
            ids(sim.decide_at(stopping(), Desired::Stopped, obs, Duration::ZERO).1)
        };
        let seven = Duration::from_secs(7);
        assert_eq!(stop(&mut sim, &all), vec![("id-proxy".to_string(), seven)]);
        let proxy_gone = [exited("proxy", 143), all[1].clone(), all[2].clone()];
        assert_eq!(stop(&mut sim, &proxy_gone), vec![("id-app".to_string(), seven)]);
        let only_db = [exited("proxy", 143), exited("app", 143), all[2].clone()];
        assert_eq!(stop(&mut sim, &only_db), vec![("id-db".to_string(), seven)]);
        // Independent containers stop together, each with its own grace period (label).
        let mut sim = Sim::new(&[c("a", true), c("b", false)]);
        let both = [info("a", ContainerState::Running), info("b", ContainerState::Running)];
        assert_eq!(stop(&mut sim, &both).len(), 2);
    }

    #[test]
    fn a_dependent_that_never_started_does_not_hold_up_the_stop() {
        let mut sim = Sim::new(&[c("app", true).on("db", "HEALTHY"), c("db", true).checked()]);
        let obs = [info("app", ContainerState::Created), info("db", ContainerState::Running)];
        let phase = Phase::Stopping { stop_code: None, reason: None, reached_running: false };
        let (_, step) = sim.decide_at(phase, Desired::Stopped, &obs, Duration::ZERO);
        assert_eq!(step, Step::Stop(vec![("id-db".to_string(), Duration::from_secs(7))]));
    }

    #[test]
    fn volumes_from_implies_a_created_dependency_unless_already_named() {
        let p = plan(&[c("app", true).volumes_from("data"), c("data", false)]);
        let created = Dependency { target: 1, condition: Condition::Created };
        assert_eq!(p.containers[0].depends_on, vec![created]);
        let p =
            plan(&[c("app", true).on("data", "SUCCESS").volumes_from("data"), c("data", false)]);
        let success = Dependency { target: 1, condition: Condition::Success };
        assert_eq!(p.containers[0].depends_on, vec![success], "dependsOn wins");
        assert_eq!(Condition::parse("CREATED"), None, "internal, never read from a definition");
        let d = def(&[c("a", true).volumes_from("zz")]);
        assert!(plan_dependencies(&d).err().unwrap_or_default().contains("unknown container zz"));
        let d = def(&[c("a", true).volumes_from("b"), c("b", true).on("a", "START")]);
        assert!(plan_dependencies(&d).err().unwrap_or_default().contains("form a cycle"));
    }

    #[test]
    fn volumes_from_creates_and_starts_the_dependent_once_the_source_exists() {
        let mut sim = Sim::new(&[c("app", true).volumes_from("data"), c("data", false)]);
        assert_eq!(sim.step(&[]).1, Step::Create(1), "the source first");
        let data_created = info("data", ContainerState::Created);
        assert_eq!(sim.step(std::slice::from_ref(&data_created)).1, Step::Create(0));
        // The source need not run for the dependent to start: whichever comes first.
        let app_created = info("app", ContainerState::Created);
        assert_eq!(started(&sim.step(&[app_created, data_created.clone()]).1), Some("app"));
        let by_name = HashMap::new();
        let order = OrderView::new(&sim.plan, &by_name, &sim.started, &sim.start_failed, sim.t0);
        assert_eq!(gate(&order, 0, false), Gate::Wait);
        assert_eq!(blocked(&order), None);
        assert_eq!(next_deadline(&order), None, "no startTimeout for CREATED");
    }

    #[test]
    fn volumes_from_source_stops_after_its_dependents() {
        let mut sim = Sim::new(&[c("app", true).volumes_from("data"), c("data", false)]);
        let both = [info("app", ContainerState::Running), info("data", ContainerState::Running)];
        let stopping = Phase::Stopping { stop_code: None, reason: None, reached_running: true };
        let (_, step) = sim.decide_at(stopping.clone(), Desired::Stopped, &both, Duration::ZERO);
        assert_eq!(step, Step::Stop(vec![("id-app".to_string(), Duration::from_secs(7))]));
        let app_gone = [exited("app", 143), both[1].clone()];
        let (_, step) = sim.decide_at(stopping, Desired::Stopped, &app_gone, Duration::ZERO);
        assert_eq!(step, Step::Stop(vec![("id-data".to_string(), Duration::from_secs(7))]));
    }

    #[test]
    fn failed_non_essential_start_counts_as_stopped_and_is_not_retried() {
        // The datavolume case: `data` cannot run, `app` only mounts its volumes.
        let cs = [c("app", true).volumes_from("data"), c("data", false)];
        let mut sim = Sim::new(&cs);
        let obs = [info("app", ContainerState::Created), info("data", ContainerState::Created)];
        assert_eq!(started(&sim.step(&obs).1), Some("app"));
        let obs = [info("app", ContainerState::Running), info("data", ContainerState::Created)];
        assert_eq!(started(&sim.step(&obs).1), Some("data"));
        sim.start_failed[1] = Some("CannotStartContainerError: no such file".into());
        let (phase, step) = sim.step(&obs);
        assert_eq!((phase, step), (Some(Phase::Running), Step::Wait), "no second start");
        // A COMPLETE dependent goes on; a SUCCESS one can never start.
        let mut sim = Sim::new(&[c("app", true).on("data", "COMPLETE"), c("data", false)]);
        sim.start_failed[1] = Some("CannotStartContainerError: x".into());
        assert_eq!(sim.step(&[info("data", ContainerState::Created)]).1, Step::Create(0));
        let mut sim = Sim::new(&[c("app", true).on("data", "SUCCESS"), c("data", false)]);
        sim.start_failed[1] = Some("CannotStartContainerError: x".into());
        let (_, reason) = failure(sim.step(&[info("data", ContainerState::Created)]).0);
        assert!(reason.contains("(SUCCESS), which failed to start (CannotStartContainerError: x)"));
    }
}
