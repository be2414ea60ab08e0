//! # berth-controller — the control plane
//!
//! Data flow: a gRPC request (`api/`) or an agent message (`dispatcher/`) becomes a
//! [`store::Command`], proposed to Raft (`raft/`, via `propose`), committed by a majority,
//! persisted (`storage/`) and applied in log order to the state machine (`store/`). Only then does
//! the caller hear "ok". Leader-only loops (`orchestrator/`) read the state, decide with the pure
//! `berth-scheduler`, and propose commands like any client.
//!
//! * `storage/`      — key-value backend trait (sled, and in-memory for tests).
//! * `raft/`         — the raft-rs Ready loop: log storage, transport, proposals, snapshots.
//! * `store/`        — the replicated state machine: commands, apply, queries.
//! * `propose`       — encode → propose → decode: the one way to change state.
//! * `api/`          — the `berth.v1.Berth` gRPC service.
//! * `auth/`         — API tokens with roles (`--acl`): the permission table, the tower layer,
//!   cluster scopes, the `berth.v1.BerthAcl` service, the bootstrap admin token.
//! * `dispatcher/`   — agent sessions (`berth.v1.AgentDispatch`).
//! * `orchestrator/` — leader-only loops: the service reconciler, node liveness.
//! * `http`          — the HTTP port: `GET /v1/events` (NDJSON or SSE), `/metrics`, `/healthz`,
//!   `/readyz`.
//! * `logging`       — `--log-format text|json` of the binaries (stderr, `RUST_LOG`).
//! * `metrics`       — the Prometheus series (`charts/berth/METRICS.md`), one registry per
//!   controller.
//! * `server`        — wires the parts together (`Controller::start(config)`).
//! * `clock`, `error` — injected time and ids; the crate's one error type.
//! * `crypto`        — the cluster key (AES-256-GCM at rest), token hashing, random secrets.
//! * `flags`         — clap flags shared by `berth-controller` and `berth dev`.
//! * `tls/`          — TLS mode (`--tls`): CA bootstrap, own certificate, join tokens
//!   (`berth.v1.BerthSecurity`), the dispatcher's identity binding, the listen-address policy.
//! * `join/`         — controller join with a join token (`--join-token`, `--join URL`): the
//!   joiner's side and the leader's (AddMember from `JoinCluster`). Peer mTLS: `peer/tls`.
//! * `renewal`       — certificate renewal: this controller's own (loop, swapped in place) and
//!   `BerthSecurity.RenewCertificate` for nodes.
//! * `limits`        — hardened input: per-token rate limit, unary deadlines, request sizes
//!   (pagination: `api/page`).
//!
//! Must not touch: Docker (that is the agent's), clocks or randomness inside `store::apply`.

pub mod api;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod dispatcher;
pub mod error;
pub mod events;
pub mod flags;
pub mod http;
pub mod join;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod orchestrator;
pub mod peer;
pub mod propose;
pub mod raft;
pub mod renewal;
pub mod server;
pub mod storage;
pub mod store;
pub mod tls;

pub use error::{Error, Result};
pub use server::{Controller, ControllerConfig, RunningController};
