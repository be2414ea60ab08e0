//! Storage (to be written).
