#![forbid(unsafe_code)]

pub mod endpoints;
pub mod endpointslice;
pub mod kubernetes_service;
pub mod leader_election;
pub mod mirroring;
