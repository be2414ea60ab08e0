//! # berth-agent (to be written)
