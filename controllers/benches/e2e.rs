//! End-to-end controller benchmark (being written).
fn main() {}
