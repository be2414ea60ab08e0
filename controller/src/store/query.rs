//! Read-side views of the state: the ECS objects as the API returns them, with derived fields
//! (counts, remaining resources) computed from the tasks. Pure functions of `&State`.

use super::Rejection;
use super::state::{State, cluster_of_arn};
use berth_proto::model::Timestamp;
use berth_proto::model::{
    ALWAYS_RESERVED_PORTS, Cluster, ContainerInstance, PENDING, RUNNING, Resource, Service, Task,
    TaskDefinition,
};
use std::collections::BTreeSet;

/// A task that stops on its own within this long of reaching RUNNING counts as a failed launch
/// (for throttling and `failedTasks`), like one that never reached RUNNING.
pub const QUICK_EXIT_MILLIS: i64 = 10_000;

/// A service with at least 1/this of all tasks is read by scanning the tasks rather than by a
/// lookup per indexed id (`State::service_tasks_with_stopped`).
const DENSE_SERVICE_SHARE: usize = 8;

/// Stopped reason of a task the scheduler replaced for failing its health checks.
pub const UNHEALTHY_STOP_REASON: &str = "Task failed container health checks";

/// What a task holds on its instance while it is not STOPPED.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reservation {
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<u16>,
}

impl Reservation {
    pub fn of(def: &TaskDefinition) -> Reservation {
        Reservation {
            cpu: def.reserved_cpu(),
            memory: def.reserved_memory(),
            ports: def.static_host_ports(),
        }
    }
}

/// Remaining cpu, memory and the set of used ports of an instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remaining {
    pub cpu: i64,
    pub memory: i64,
    pub used_ports: BTreeSet<u16>,
}

impl State {
    pub fn task_reservation(&self, task: &Task) -> Reservation {
        self.taskdef_by_arn(&task.task_definition_arn).map(Reservation::of).unwrap_or_default()
    }

    /// Every task placed on an instance (stopped ones included), in id order: from the index,
    /// or a scan when the index does not cover the tasks (state built by hand in tests).
    pub fn tasks_placed_on<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> Box<dyn Iterator<Item = &'a Task> + 'a> {
        if self.index.covers(self.tasks.len()) {
            Box::new(self.index.on_instance(instance_id).filter_map(|id| self.tasks.get(id)))
        } else {
            Box::new(self.tasks.values().filter(move |t| t.instance_id() == Some(instance_id)))
        }
    }

    /// Tasks placed on an instance that still hold resources.
    pub fn tasks_on_instance<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks_placed_on(instance_id).filter(|t| t.holds_resources())
    }

    pub fn remaining(&self, instance: &ContainerInstance) -> Remaining {
        let mut rem = Remaining {
            cpu: instance.registered_integer("CPU"),
            memory: instance.registered_integer("MEMORY"),
            used_ports: instance.registered_ports().into_iter().collect(),
        };
        if self.index.covers(self.tasks.len()) {
            // Summed as tasks come and go (`index.rs`), not walked here.
            if let Some(r) = self.index.reserved_on(instance.id()) {
                rem.cpu -= r.cpu;
                rem.memory -= r.memory;
                rem.used_ports.extend(r.ports.keys());
            }
            return rem;
        }
        for t in self.tasks_on_instance(instance.id()) {
            let r = self.task_reservation(t);
            rem.cpu -= r.cpu;
            rem.memory -= r.memory;
            rem.used_ports.extend(r.ports);
        }
        rem
    }

    /// The instance as DescribeContainerInstances shows it.
    pub fn instance_view(&self, id: &str) -> Option<ContainerInstance> {
        let rec = self.instances.get(id)?;
        let mut ci = rec.instance.clone();
        let rem = self.remaining(&ci);
        let (mut running, mut pending) = (0, 0);
        for t in self.tasks_on_instance(id) {
            if t.desired_status == RUNNING {
                running += 1;
            }
            if t.last_status == PENDING || t.last_status == "PROVISIONING" {
                pending += 1;
            }
        }
        ci.running_tasks_count = running;
        ci.pending_tasks_count = pending;
        ci.remaining_resources = vec![
            Resource::integer("CPU", rem.cpu),
            Resource::integer("MEMORY", rem.memory),
            Resource::string_set("PORTS", rem.used_ports.iter().map(|p| p.to_string()).collect()),
            Resource::string_set("PORTS_UDP", vec![]),
        ];
        Some(ci)
    }

    pub fn instances_in<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Iterator<Item = &'a ContainerInstance> + 'a {
        self.instances.values().filter(move |r| r.cluster == cluster).map(|r| &r.instance)
    }

    pub fn cluster_view(&self, name: &str) -> Option<Cluster> {
        let rec = self.clusters.get(name)?;
        let tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| cluster_of_arn(&t.cluster_arn) == name && !t.is_stopped())
            .collect();
        Some(Cluster {
            cluster_arn: self.scope.cluster(name),
            cluster_name: rec.name.clone(),
            status: rec.status.clone(),
            registered_container_instances_count: self
                .instances_in(name)
                .filter(|i| i.status != "INACTIVE")
                .count() as i64,
            running_tasks_count: tasks.iter().filter(|t| t.last_status == RUNNING).count() as i64,
            pending_tasks_count: tasks.iter().filter(|t| t.last_status == PENDING).count() as i64,
            active_services_count: self
                .services
                .values()
                .filter(|s| cluster_of_arn(&s.cluster_arn) == name && s.status == "ACTIVE")
                .count() as i64,
        })
    }

    /// Non-stopped tasks of a service (`group` = `service:NAME`) in a cluster.
    pub fn service_tasks<'a>(
        &'a self,
        cluster: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Task> + 'a {
        self.service_tasks_with_stopped(cluster, name).filter(|t| !t.is_stopped())
    }

    /// Every task of a service in a cluster, stopped ones included, in id order.
    pub fn service_tasks_with_stopped<'a>(
        &'a self,
        cluster: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Task> + 'a {
        let of_service = move |t: &&Task| {
            t.service_name() == Some(name) && cluster_of_arn(&t.cluster_arn) == cluster
        };
        // A service holding a good share of all tasks (one big service at scale) is walked in
        // one ordered scan: far cheaper than a map lookup per id, and in the same (id) order.
        let covered = self.index.covers(self.tasks.len());
        let indexed = if covered { self.index.of_service_len(cluster, name) } else { 0 };
        let all: Box<dyn Iterator<Item = &'a Task> + 'a> =
            if covered && indexed.saturating_mul(DENSE_SERVICE_SHARE) < self.tasks.len() {
                let ids = self.index.of_service_tasks(cluster, name);
                Box::new(ids.filter_map(|id| self.tasks.get(id)))
            } else {
                Box::new(self.tasks.values())
            };
        all.filter(of_service)
    }

    /// Consecutive failed launches of a deployment, newest first: tasks that stopped on their own
    /// (`EssentialContainerExited`, `TaskFailedToStart`) without reaching RUNNING or within
    /// [`QUICK_EXIT_MILLIS`] of it. A task that ran longer, or was stopped by the scheduler or a
    /// user, ends the streak. Returns the count and when the newest of them stopped.
    pub fn launch_failures(
        &self,
        cluster: &str,
        name: &str,
        deployment: &str,
    ) -> (u32, Option<Timestamp>) {
        self.failures_within(cluster, name, deployment, QUICK_EXIT_MILLIS)
    }

    /// As [`State::launch_failures`], counting tasks that failed within `window_millis` of
    /// reaching RUNNING, including those the scheduler replaced for failing health checks.
    pub fn failures_within(
        &self,
        cluster: &str,
        name: &str,
        deployment: &str,
        window_millis: i64,
    ) -> (u32, Option<Timestamp>) {
        let tasks = self.service_tasks_with_stopped(cluster, name);
        State::failures_among(tasks, deployment, window_millis)
    }

    /// [`State::failures_within`] over `tasks` (a service's tasks, stopped ones included), for
    /// a caller that already walked them.
    pub fn failures_among<'a>(
        tasks: impl Iterator<Item = &'a Task>,
        deployment: &str,
        window_millis: i64,
    ) -> (u32, Option<Timestamp>) {
        let mut stopped: Vec<&Task> = tasks
            .filter(|t| t.is_stopped() && t.started_by.as_deref() == Some(deployment))
            .collect();
        stopped.sort_by_key(|t| std::cmp::Reverse((t.stopped_at, t.created_at)));
        let mut n = 0;
        for t in &stopped {
            let own = matches!(
                t.stop_code.as_deref(),
                Some("EssentialContainerExited" | "TaskFailedToStart")
            ) || t.stopped_reason.as_deref() == Some(UNHEALTHY_STOP_REASON);
            let quick = match (t.started_at, t.stopped_at) {
                (Some(a), Some(b)) => b.millis() - a.millis() < window_millis,
                _ => true,
            };
            if !(own && quick) {
                break;
            }
            n += 1;
        }
        (n, stopped.first().filter(|_| n > 0).and_then(|t| t.stopped_at))
    }

    /// The service as DescribeServices shows it, with running/pending counts per deployment.
    pub fn service_view(&self, cluster: &str, name: &str) -> Option<Service> {
        let mut svc = self.services.get(&State::service_key(cluster, name))?.clone();
        // One walk over the service's tasks (tens of thousands at scale, under the lock); the
        // counts are taken from it.
        let every: Vec<&Task> = self.service_tasks_with_stopped(cluster, name).collect();
        // (running, pending) of the service, then of each deployment (by index).
        let mut counts = (0i64, 0i64);
        let mut by_deployment = vec![(0i64, 0i64); svc.deployments.len()];
        for t in every.iter().filter(|t| !t.is_stopped()) {
            let running = t.last_status == RUNNING;
            let pending = t.last_status == PENDING || t.last_status == "PROVISIONING";
            if !(running || pending) {
                continue;
            }
            let dep = t.started_by.as_deref().and_then(|by| {
                svc.deployments
                    .iter()
                    .position(|d| d.id == by)
                    .and_then(|i| by_deployment.get_mut(i))
            });
            for c in std::iter::once(&mut counts).chain(dep) {
                c.0 += i64::from(running);
                c.1 += i64::from(pending);
            }
        }
        (svc.running_count, svc.pending_count) = counts;
        for (d, (running, pending)) in svc.deployments.iter_mut().zip(by_deployment) {
            let failures = State::failures_among(every.iter().copied(), &d.id, QUICK_EXIT_MILLIS);
            d.failed_tasks = i64::from(failures.0);
            d.running_count = running;
            d.pending_count = pending;
        }
        let n = svc.events.len();
        if n > berth_proto::model::MAX_SERVICE_EVENTS {
            svc.events.drain(..n - berth_proto::model::MAX_SERVICE_EVENTS);
        }
        svc.events.reverse(); // ECS lists the newest event first
        Some(svc)
    }

    /// Resolve `family`, `family:revision` or an ARN. `family` alone → latest ACTIVE revision.
    pub fn resolve_taskdef(&self, reference: &str) -> Result<&TaskDefinition, Rejection> {
        let not_found = || {
            Rejection::client(format!(
                "Unable to describe task definition: {reference} does not exist."
            ))
        };
        let tail = if reference.starts_with("arn:") {
            // An ARN of another region, account or resource type names nothing here.
            let ours = format!("{}:task-definition/", self.scope.prefix());
            match reference.strip_prefix(ours.as_str()) {
                Some(tail) => tail,
                None => return Err(not_found()),
            }
        } else {
            reference
        };
        match tail.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().map_err(|_| {
                    Rejection::client(format!("Invalid revision '{rev}' in task definition '{reference}': expected a positive integer."))
                })?;
                self.families
                    .get(family)
                    .and_then(|f| f.revisions.get(&rev))
                    .map(|d| &**d)
                    .ok_or_else(not_found)
            }
            None => self
                .families
                .get(tail)
                .and_then(|f| {
                    f.revisions.values().rev().find(|d| d.status.as_deref() == Some("ACTIVE"))
                })
                .map(|d| &**d)
                .ok_or_else(not_found),
        }
    }
}

/// Ports an instance always reserves, merged with what its agent reported.
pub fn reserved_ports(reported: &[u16]) -> Vec<u16> {
    let mut all: BTreeSet<u16> = ALWAYS_RESERVED_PORTS.iter().copied().collect();
    all.extend(reported.iter().copied());
    all.into_iter().collect()
}
