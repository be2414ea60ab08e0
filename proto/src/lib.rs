//! # berth-proto — the wire contract and the one domain model
//!
//! * [`v1`]: the generated gRPC code for `berth.v1` (`proto/berth.proto`): the client API
//!   (`Berth`) and the agent protocol (`AgentDispatch`).
//! * [`model`]: Berth's domain objects as Rust types with serde and the ECS JSON field names
//!   (camelCase). Objects cross the wire as this JSON inside proto `json` fields, so there is
//!   exactly one definition of each shape.
//! * [`taskdef`]: turning a user's ECS RegisterTaskDefinition document into a validated
//!   [`model::TaskDefinition`], with warnings and precise errors.
//! * [`service_input`]: reading an ECS CreateService document (`--cli-input-json`) into the
//!   fields Berth acts on, with warnings for what it cannot honour (same error style).
//!
//! * [`paging`]: following `nextToken` across pages (`list_all`), for every client.
//! * [`acl`]: the redacting `Debug` of `CreateAclTokenReply` (`proto/acl.proto`).
//! * [`security`]: the redacting `Debug` of the join-token messages (`proto/security.proto`).
//! * [`secrets`]: secret name / value rules, `valueFrom` parsing, the redacting
//!   [`secrets::SecretString`] (and the redacting `Debug` of the messages carrying values).
//!
//! * [`logging`]: the `--log-format text|json` logging setup every Berth binary shares.
//!
//! This crate does no I/O (besides installing the log subscriber); controller, agent and CLI all
//! depend on it.

pub mod acl;
pub mod logging;
pub mod model;
pub mod paging;
pub mod secrets;
pub mod security;
pub mod service_input;
pub mod taskdef;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

/// Maximum gRPC message size both sides accept (task definitions are ≤ 64 KiB, lists can be big).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
