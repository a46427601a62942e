#![forbid(unsafe_code)]
//! Shared helpers for the envtest-style integration tests: the real control plane
//! ([`real::RealCluster`], etcd + kube-apiserver built from upstream's Go modules) beside testenv,
//! and the harness that runs one test body on both ([`backend`]).

pub mod allocation_api_bench;
pub mod allocator_bench;
pub mod backend;
pub mod bench_report;
pub mod closed_loop;
pub mod connectivity;
pub mod controller_bench;
pub mod controller_fidelity;
pub mod data_plane;
pub mod fidelity;
pub mod figures;
pub mod fixtures;
pub mod procfs;
pub mod real;
pub mod seed;
pub mod testenv_bench;

pub use backend::{Backend, BackendKind, Harness, HarnessOptions};
pub use real::{RealCluster, RealClusterError, RealClusterOptions};
