//! In-memory port (being written).
