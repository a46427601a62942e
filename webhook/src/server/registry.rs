//! The cluster-backed allocator of record (`allocator::registry::ServiceRegistry`: IPAddress and
//! NodePortAllocation claims) behind the admission seam, for several webhook replicas.

use allocator::plan_cluster_ips_for_create;
use allocator::registry::{AllocatedService, RegistryError, ServiceRef, ServiceRegistry};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;

use crate::server::allocation::{Allocation, AllocationRejection, HeldValues, ServiceAllocator};

fn rejection(e: RegistryError) -> AllocationRejection {
    AllocationRejection::from(&e.outcome())
}

fn allocation(a: AllocatedService) -> Allocation {
    Allocation {
        service: a.service,
        claimed: HeldValues {
            ips: a.claimed_ips,
            ports: a.claimed_ports,
        },
        dropped: HeldValues {
            ips: a.release_ips,
            ports: a.release_ports,
        },
    }
}

// The registry has no dry-run claims: a dry run is judged by the family plan alone and shows
// no new addresses or ports (the write would be refused for the same family errors).
fn dry_run(
    registry: &ServiceRegistry,
    service: &Service,
) -> Result<Allocation, AllocationRejection> {
    plan_cluster_ips_for_create(service, &registry.config().ranges)?;
    Ok(Allocation {
        service: service.clone(),
        ..Allocation::default()
    })
}

impl ServiceAllocator for ServiceRegistry {
    fn allocate_for_create<'a>(
        &'a self,
        service: &'a Service,
        dry: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>> {
        Box::pin(async move {
            if dry {
                return dry_run(self, service);
            }
            ServiceRegistry::allocate_for_create(self, service)
                .await
                .map(allocation)
                .map_err(rejection)
        })
    }

    fn allocate_for_update<'a>(
        &'a self,
        old: &'a Service,
        new: &'a Service,
        dry: bool,
    ) -> BoxFuture<'a, Result<Allocation, AllocationRejection>> {
        Box::pin(async move {
            if dry {
                let mut patched = new.clone();
                allocator::patch_allocated_values(old, &mut patched);
                return Ok(Allocation {
                    service: patched,
                    ..Allocation::default()
                });
            }
            ServiceRegistry::allocate_for_update(self, old, new)
                .await
                .map(allocation)
                .map_err(rejection)
        })
    }

    fn release<'a>(
        &'a self,
        owner: &'a Service,
        values: &'a HeldValues,
    ) -> BoxFuture<'a, Result<(), AllocationRejection>> {
        Box::pin(async move {
            self.release_values(&ServiceRef::of(owner), &values.ips, &values.ports)
                .await
                .map_err(rejection)
        })
    }

    fn makes_claims(&self) -> bool {
        self.config().mode == allocator::registry::AllocationMode::Authoritative
    }
}
