#![forbid(unsafe_code)]
//! Shared helpers for the envtest-style integration tests: the real control plane
//! ([`real::RealCluster`], etcd + kube-apiserver built from upstream's Go modules) beside testenv.

pub mod real;

pub use real::{RealCluster, RealClusterError, RealClusterOptions};
