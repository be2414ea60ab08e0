//! The `berth.v1.Berth` gRPC service: the client API.
//!
//! Each handler validates its request, then either reads a consistent view of the state (queries)
//! or proposes one command and answers after it is committed, durable and applied (writes).
//! Objects are answered as ECS JSON (`berth_proto::model`). One file per resource:
//! `clusters`, `taskdefs`, `services`, `tasks`, `instances`, `events` (the event stream, served
//! from this controller's own copy of the log); errors map to gRPC codes in `crate::error`.
//! `secrets` is the `berth.v1.BerthSecrets` service (same `Api` value, its own proto service).

mod clusters;
mod events;
mod instances;
pub mod members;
pub mod page;
mod placement;
pub mod secrets;
mod services;
mod taskdefs;
mod tasks;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use crate::store::{Rejection, SharedState};
use berth_proto::model::{DEFAULT_CLUSTER, is_valid_name};
use berth_proto::v1::{self, berth_server::Berth};
use serde::Serialize;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct Api {
    pub(crate) proposer: Proposer,
    pub(crate) shared: SharedState,
    pub(crate) clock: Arc<dyn Clock>,
    /// How the scheduler counts task health (drain progress uses it).
    pub(crate) health: crate::orchestrator::health::HealthPolicy,
    /// This controller's copy of the event log (subscriptions read it).
    pub(crate) events: Arc<crate::events::EventLog>,
    /// Largest desiredCount a service may have (`--max-service-tasks`).
    pub(crate) max_service_tasks: i64,
    /// Placement series (`crate::metrics`); unregistered unless given.
    pub(crate) metrics: crate::metrics::Metrics,
    /// The cluster key (seals secrets before they are proposed); `None` until given.
    pub(crate) cluster_key: Option<Arc<crate::crypto::ClusterKey>>,
}

impl Api {
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        events: Arc<crate::events::EventLog>,
    ) -> Self {
        Api {
            proposer,
            shared,
            clock,
            health: Default::default(),
            events,
            max_service_tasks: crate::orchestrator::DEFAULT_MAX_SERVICE_TASKS,
            metrics: Default::default(),
            cluster_key: None,
        }
    }

    /// The cluster key this controller seals secrets with (`Controller::start` loads it).
    pub fn with_cluster_key(mut self, key: Arc<crate::crypto::ClusterKey>) -> Self {
        self.cluster_key = Some(key);
        self
    }

    /// The controller's metrics (placements are observed into them).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The largest desiredCount a service may have (default: ECS's quota of 5000).
    pub fn with_max_service_tasks(mut self, n: i64) -> Self {
        self.max_service_tasks = n;
        self
    }

    /// The health policy the orchestrator runs with (default: ECS's).
    pub fn with_health_policy(mut self, health: crate::orchestrator::health::HealthPolicy) -> Self {
        self.health = health;
        self
    }

    /// Reads are linearizable (ReadIndex through the leader, then wait until this node applied
    /// that far) unless the request carries `x-berth-consistency: stale`.
    async fn consistent<T>(&self, r: &Request<T>) -> std::result::Result<(), Status> {
        let stale =
            r.metadata().get(CONSISTENCY_HEADER).and_then(|v| v.to_str().ok()) == Some("stale");
        if !stale {
            self.proposer.raft().read_barrier().await.map_err(Error::from)?;
        }
        Ok(())
    }
}

/// Request metadata selecting the read consistency (`stale` for a local read).
pub const CONSISTENCY_HEADER: &str = "x-berth-consistency";

/// The cluster a request names (`default` when empty), checked to exist.
pub(crate) fn cluster_name(api: &Api, given: &str) -> Result<String> {
    let name = if given.is_empty() { DEFAULT_CLUSTER } else { berth_proto::model::arn_tail(given) };
    if !is_valid_name(name) {
        return Err(Error::invalid(format!(
            "cluster '{name}' is invalid: up to 255 letters, numbers, hyphens, and underscores are allowed."
        )));
    }
    if !api.shared.read().cluster_is_active(name) {
        return Err(Rejection::cluster_not_found(name).into());
    }
    Ok(name.to_string())
}

pub(crate) fn object<T: Serialize>(
    value: &T,
    warnings: Vec<String>,
) -> Result<Response<v1::ObjectReply>> {
    let json =
        serde_json::to_string(value).map_err(|e| Error::Storage(format!("encoding reply: {e}")))?;
    Ok(Response::new(v1::ObjectReply { json, warnings }))
}

pub(crate) fn list_reply<T: Serialize>(
    items: impl IntoIterator<Item = T>,
) -> Result<Response<v1::ListReply>> {
    let items = items
        .into_iter()
        .map(|i| {
            serde_json::to_string(&i).map_err(|e| Error::Storage(format!("encoding reply: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Response::new(v1::ListReply { items, next_token: String::new() }))
}

/// One page of `keyed` (sorted by key) as a `ListReply` with the next page's token.
pub(crate) fn page_reply<T: Serialize>(
    keyed: Vec<(String, T)>,
    page: &page::Page,
) -> Result<Response<v1::ListReply>> {
    let (items, next_token) = page::paginate(keyed, page);
    let mut reply = list_reply(items)?;
    reply.get_mut().next_token = next_token;
    Ok(reply)
}

type R<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl Berth for Api {
    type SubscribeEventsStream = events::EventStream;
    async fn subscribe_events(
        &self,
        r: Request<v1::SubscribeEventsRequest>,
    ) -> R<Self::SubscribeEventsStream> {
        events::subscribe(self, r.into_inner())
    }
    async fn create_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        Ok(clusters::create(self, r.into_inner()).await?)
    }
    async fn describe_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        self.consistent(&r).await?;
        Ok(clusters::describe(self, r.into_inner())?)
    }
    async fn delete_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        Ok(clusters::delete(self, r.into_inner()).await?)
    }
    async fn list_clusters(&self, r: Request<v1::ListClustersRequest>) -> R<v1::ListReply> {
        self.consistent(&r).await?;
        Ok(clusters::list(self, r.into_inner())?)
    }
    async fn register_task_definition(
        &self,
        r: Request<v1::RegisterTaskDefinitionRequest>,
    ) -> R<v1::ObjectReply> {
        Ok(taskdefs::register(self, r.into_inner()).await?)
    }
    async fn describe_task_definition(
        &self,
        r: Request<v1::TaskDefinitionRef>,
    ) -> R<v1::ObjectReply> {
        self.consistent(&r).await?;
        Ok(taskdefs::describe(self, r.into_inner())?)
    }
    async fn list_task_definitions(
        &self,
        r: Request<v1::ListTaskDefinitionsRequest>,
    ) -> R<v1::ListReply> {
        self.consistent(&r).await?;
        Ok(taskdefs::list(self, r.into_inner())?)
    }
    async fn deregister_task_definition(
        &self,
        r: Request<v1::TaskDefinitionRef>,
    ) -> R<v1::ObjectReply> {
        Ok(taskdefs::deregister(self, r.into_inner()).await?)
    }
    async fn create_service(&self, r: Request<v1::CreateServiceRequest>) -> R<v1::ObjectReply> {
        Ok(services::create(self, r.into_inner()).await?)
    }
    async fn update_service(&self, r: Request<v1::UpdateServiceRequest>) -> R<v1::ObjectReply> {
        Ok(services::update(self, r.into_inner()).await?)
    }
    async fn describe_service(&self, r: Request<v1::ServiceRef>) -> R<v1::ObjectReply> {
        self.consistent(&r).await?;
        Ok(services::describe(self, r.into_inner())?)
    }
    async fn list_services(&self, r: Request<v1::ListServicesRequest>) -> R<v1::ListReply> {
        self.consistent(&r).await?;
        Ok(services::list(self, r.into_inner())?)
    }
    async fn delete_service(&self, r: Request<v1::DeleteServiceRequest>) -> R<v1::ObjectReply> {
        Ok(services::delete(self, r.into_inner()).await?)
    }
    async fn run_task(&self, r: Request<v1::RunTaskRequest>) -> R<v1::ObjectReply> {
        Ok(tasks::run(self, r.into_inner()).await?)
    }
    async fn stop_task(&self, r: Request<v1::StopTaskRequest>) -> R<v1::ObjectReply> {
        Ok(tasks::stop(self, r.into_inner()).await?)
    }
    async fn describe_task(&self, r: Request<v1::TaskRef>) -> R<v1::ObjectReply> {
        self.consistent(&r).await?;
        Ok(tasks::describe(self, r.into_inner())?)
    }
    async fn list_tasks(&self, r: Request<v1::ListTasksRequest>) -> R<v1::ListReply> {
        self.consistent(&r).await?;
        Ok(tasks::list(self, r.into_inner())?)
    }
    async fn describe_container_instance(&self, r: Request<v1::InstanceRef>) -> R<v1::ObjectReply> {
        self.consistent(&r).await?;
        Ok(instances::describe(self, r.into_inner())?)
    }
    async fn list_container_instances(
        &self,
        r: Request<v1::ListInstancesRequest>,
    ) -> R<v1::ListReply> {
        self.consistent(&r).await?;
        Ok(instances::list(self, r.into_inner())?)
    }
    async fn list_members(&self, _r: Request<v1::ListMembersRequest>) -> R<v1::ListReply> {
        Ok(members::list(self)?)
    }
    async fn add_member(&self, r: Request<v1::AddMemberRequest>) -> R<v1::ObjectReply> {
        Ok(members::add(self, r.into_inner()).await?)
    }
    async fn remove_member(&self, r: Request<v1::RemoveMemberRequest>) -> R<v1::ObjectReply> {
        Ok(members::remove(self, r.into_inner()).await?)
    }
    async fn get_status(&self, _r: Request<v1::StatusRequest>) -> R<v1::ObjectReply> {
        Ok(members::status(self)?)
    }
    async fn put_attributes(&self, r: Request<v1::AttributesRequest>) -> R<v1::ObjectReply> {
        Ok(instances::put_attributes(self, r.into_inner()).await?)
    }
    async fn delete_attributes(&self, r: Request<v1::AttributesRequest>) -> R<v1::ObjectReply> {
        Ok(instances::delete_attributes(self, r.into_inner()).await?)
    }
    async fn deregister_container_instance(
        &self,
        r: Request<v1::DeregisterInstanceRequest>,
    ) -> R<v1::ObjectReply> {
        Ok(instances::deregister(self, r.into_inner()).await?)
    }
    async fn update_container_instance_state(
        &self,
        r: Request<v1::InstanceStateRequest>,
    ) -> R<v1::ObjectReply> {
        Ok(instances::update_state(self, r.into_inner()).await?)
    }
}
