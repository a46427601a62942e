//! svcplane's kube-proxy: upstream kube-proxy's nftables mode (rule layout C, Kubernetes 1.34).
//!
//! The core is pure. [`desired_ruleset`] turns Services and EndpointSlices ([`model`], the
//! endpoint selection of [`topology`]) and a [`RulesConfig`] into a [`Ruleset`] ([`rules`]);
//! [`SyncState::plan`] turns the last applied state and that ruleset into one nftables
//! [`Transaction`] ([`sync`]), rendered exactly as upstream's knftables writes it ([`nft`]). The
//! health-check answers are pure functions too ([`health`]).
//!
//! The shell applies transactions with `nft -f -` ([`runner`]), keeps Services, EndpointSlices,
//! ServiceCIDRs and its Node from watches and syncs ([`proxier`]), serves the health checks
//! ([`servers`]) with kube-proxy's metrics ([`metrics`]), and reads the node's addresses ([`node_addresses`]). One table per IP family:
//! the same code builds `ip kube-proxy` and `ip6 kube-proxy`. docs/proxy.md says where it
//! differs from upstream.

#![forbid(unsafe_code)]

pub mod health;
pub mod metrics;
pub mod model;
pub mod names;
pub mod nft;
pub mod node_addresses;
pub mod proxier;
pub mod rules;
pub mod runner;
pub mod servers;
pub mod sync;
pub mod topology;

pub use metrics::ProxyMetrics;
pub use nft::{IpFamily, TableState, Transaction};
pub use proxier::{ListenerFactory, ProxyConfig, ProxyError, full_sync_transaction, run};
pub use rules::{NodePortSelection, RulesConfig, Ruleset, desired_ruleset};
pub use runner::{NftError, NftRunner};
pub use servers::plain_bind;
pub use sync::{KernelObjects, SyncPlan, SyncState};
