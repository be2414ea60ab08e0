//! Raft (to be written).
