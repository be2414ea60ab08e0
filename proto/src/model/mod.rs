//! The domain model: ECS objects with ECS JSON field names.
//!
//! * `taskdef`  — TaskDefinition and ContainerDefinition (spec, as registered).
//! * `task`     — Task, Container, NetworkBinding (spec + status, versioned).
//! * `service`  — Service, Deployment, ServiceEvent.
//! * `instance` — ContainerInstance, Attribute, Resource.
//! * `cluster`  — Cluster.
//! * `event`    — ClusterEvent (the EventBridge envelope) and ISO-8601 times.
//! * `report`   — what an agent reports about a task (TaskStatusReport).
//! * `stats`    — container resource usage (`containers[].stats`) and the agent's StatsReport.
//! * `arn`      — ARNs and ids (ECS long format, configurable region/account).
//! * `time`     — Timestamp (epoch milliseconds inside, fractional epoch seconds on the wire).

pub mod arn;
pub mod cluster;
pub mod event;
pub mod instance;
pub mod placement;
pub mod report;
pub mod service;
pub mod stats;
pub mod task;
pub mod taskdef;
pub mod time;

pub use arn::*;
pub use cluster::*;
pub use event::ClusterEvent;
pub use instance::*;
pub use placement::*;
pub use report::*;
pub use service::*;
pub use stats::*;
pub use task::*;
pub use taskdef::*;
pub use time::{Clock, SystemClock, Timestamp};
