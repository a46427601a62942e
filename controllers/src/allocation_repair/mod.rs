//! Release and repair of ClusterIP and NodePort allocations (upstream's `repairip.go` and the
//! NodePort repair controller, driven by watches instead of a bitmap snapshot).
//!
//! A Service's IPAddress and NodePortAllocation claims are deleted as soon as the Service is
//! seen deleted or seen dropping a value; claims whose Service was never seen are deleted
//! after the grace period (upstream: 60 s), because claims are made before the Service is
//! stored. Every delete carries the uid it saw, so a claim re-made in between is never freed.

mod controller;
mod metrics;
mod plan;

pub use controller::{
    AllocationRepair, DEFAULT_GRACE_PERIOD, DEFAULT_REPAIR_INTERVAL, RepairConfig, RepairError,
};
pub use metrics::{RepairMetrics, register};
pub use plan::{
    Claim, Regarding, RepairAction, RepairCounts, RepairEvent, RepairInput, RepairPlan, ServiceKey,
    plan_repair,
};
