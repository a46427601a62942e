#![forbid(unsafe_code)]
//! Benchmarks of the allocators (see BENCHMARKS.md for recorded medians).
use criterion::{Criterion, criterion_group, criterion_main};
fn benches(_c: &mut Criterion) {}
criterion_group!(allocator, benches);
criterion_main!(allocator);
