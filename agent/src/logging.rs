//! Logging setup: [`berth_proto::logging`] (shared by every Berth binary), re-exported here.

pub use berth_proto::logging::{LogFormat, exit_on_panic, init};
