#![forbid(unsafe_code)]

pub mod allocation_repair;
pub mod deployment;
pub mod deployment_controller;
pub mod endpoints;
pub mod endpoints_controller;
pub mod endpointslice;
pub mod endpointslice_controller;
pub mod kubernetes_service;
pub mod kubernetes_service_controller;
pub mod leader_election;
pub mod loadbalancer;
pub mod loadbalancer_controller;
pub mod mirroring;
pub mod mirroring_controller;
pub mod offline;
pub mod replicaset;
pub mod replicaset_controller;
pub mod runtime;
pub mod workload;
