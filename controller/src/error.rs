//! The crate's one error type, and its mapping to gRPC status codes (in one place).
//!
//! The gRPC message is the one-line human text, prefixed with the ECS error type
//! (`ClientException: …`) so CLI users see what an ECS user would; clients branch on the code and
//! on the `x-berth-error-type` metadata, never on the text.

use crate::store::{RejectKind, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("task definition: {0}")]
    TaskDef(#[from] berth_proto::taskdef::TaskDefError),
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("raft: {0}")]
    Raft(String),
    /// Retryable: no leader, leadership lost, a forward failed, a timeout, shutting down. When
    /// `outcome_unknown`, the write may or may not have been applied (retry only idempotent ones).
    #[error("{message}")]
    Unavailable { message: String, outcome_unknown: bool, leader: Option<u64> },
    /// A membership change that cannot be made (already a member, last voter, …).
    #[error("{0}")]
    Membership(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("{0}")]
    Config(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Rejected(Rejection::invalid(msg))
    }
}

impl From<crate::raft::RaftError> for Error {
    fn from(e: crate::raft::RaftError) -> Error {
        use crate::raft::RaftError as R;
        match e {
            R::NotLeader { leader } => Error::NotLeader { leader },
            R::InvalidMembership(m) => Error::Membership(m),
            e if e.is_unavailable() => Error::Unavailable {
                outcome_unknown: matches!(e, R::LeadershipLost { .. } | R::ForwardFailed { .. }),
                leader: match &e {
                    R::ForwardFailed { leader, .. } => Some(*leader),
                    _ => None,
                },
                message: e.to_string(),
            },
            other => Error::Raft(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        use tonic::Code;
        let (code, ecs_type, msg) = match &e {
            Error::Rejected(r) => {
                let code = match r.kind {
                    RejectKind::InvalidParameter => Code::InvalidArgument,
                    RejectKind::ClusterNotFound
                    | RejectKind::ServiceNotFound
                    | RejectKind::NotFound => Code::NotFound,
                    RejectKind::AlreadyExists => Code::AlreadyExists,
                    RejectKind::FailedPrecondition => Code::FailedPrecondition,
                };
                (code, r.ecs_type.clone(), r.message.clone())
            }
            Error::TaskDef(t) => {
                (Code::InvalidArgument, t.ecs_error_type().to_string(), t.to_string())
            }
            Error::NotLeader { .. } | Error::Unavailable { .. } => {
                (Code::Unavailable, "ServerException".into(), e.to_string())
            }
            Error::Membership(m) => {
                (Code::FailedPrecondition, "InvalidParameterException".into(), m.clone())
            }
            _ => (Code::Internal, "ServerException".into(), e.to_string()),
        };
        let mut status = tonic::Status::new(code, format!("{ecs_type}: {msg}"));
        if let Ok(v) = ecs_type.parse() {
            status.metadata_mut().insert("x-berth-error-type", v);
        }
        let leader = match &e {
            Error::NotLeader { leader } | Error::Unavailable { leader, .. } => *leader,
            _ => None,
        };
        if let Some(Ok(v)) = leader.map(|l| l.to_string().parse()) {
            status.metadata_mut().insert("x-berth-leader-id", v);
        }
        if let Error::Unavailable { outcome_unknown: true, .. } = &e {
            status
                .metadata_mut()
                .insert("x-berth-outcome", tonic::metadata::MetadataValue::from_static("unknown"));
        }
        status
    }
}
