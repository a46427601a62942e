//! Benchmarks of the EndpointSlice planner (filled in below).

fn main() {}
