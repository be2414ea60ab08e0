//! One module per resource; each owns its clap subcommand enum and a `run` that builds the
//! request from the arguments, calls the controller through [`crate::client::Api`] and prints
//! what [`crate::output`] renders. No module here formats text itself or reads cluster state
//! beyond what it prints (`service wait-running` and `task urls` only count and list).

pub mod acl;
pub mod ca;
pub mod cert;
pub mod cluster;
pub mod deploy;
pub mod events;
pub mod instance;
pub mod operator;
pub mod placement;
pub mod secret;
pub mod service;
pub mod service_create;
pub mod task;
pub mod task_logs;
pub mod taskdef;
pub mod token;
