//! Test topology builders (being written).
