//! Pagination for test and bench code: [`berth_proto::paging`] (shared with the CLI).

pub use berth_proto::paging::{Paged, list_all};
