//! Control plane (being written).
