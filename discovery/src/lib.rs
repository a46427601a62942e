#![forbid(unsafe_code)]
//! How pods find Services, as pure functions of plain data: the environment variables kubelet
//! injects into containers ([`env_vars`]) and `svcplane explain service`'s account of a
//! Service's whole chain — selector, pods, ports, EndpointSlices, env vars and a verdict
//! ([`explain`]). Cluster DNS lives in its own crate and is meant to join the explanation as one
//! more section.

pub mod env_vars;
pub mod explain;
