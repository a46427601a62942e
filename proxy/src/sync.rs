//! From the state last applied and the desired ruleset, the transaction that gets the table
//! there (upstream's `syncProxyRules` bookkeeping, §1.12): a full sync re-creates everything; a
//! partial sync diffs elements, rewrites (add + flush + rules) the chains of Services whose
//! chains changed, flushes chains no longer used and deletes them in a later transaction no
//! sooner than one second after (kernels before 6.2 keep a map's reference to a chain alive for a
//! moment), and deletes affinity sets no longer used at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::model::ServiceKey;
use crate::names::{is_affinity_set, is_service_chain};
use crate::nft::{ContainerKind, Element, IpFamily, Statement, Transaction};
use crate::rules::{Ruleset, ServiceObjects, affinity_set_decl};

/// How long a flushed chain waits before it is deleted.
pub const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// The chains and sets found in the kernel's table (read before a full sync, so that leftovers
/// of an earlier process are cleaned up too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelObjects {
    /// Every chain's name.
    pub chains: BTreeSet<String>,
    /// Every set's name and element timeout in seconds.
    pub sets: BTreeMap<String, Option<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    /// The skeleton last written; a different one (a changed configuration or ServiceCIDR)
    /// needs a full sync, since only a full sync writes it.
    setup: Vec<Statement>,
    services: BTreeMap<ServiceKey, ServiceObjects>,
    elements: BTreeMap<(String, String), Element>,
}

impl Applied {
    fn affinity_sets(&self) -> BTreeMap<String, u32> {
        self.services
            .values()
            .flat_map(|s| s.affinity_sets.iter().map(|(n, t)| (n.clone(), *t)))
            .collect()
    }
}

/// What the proxy believes the table holds, and what it still has to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    family: IpFamily,
    base_chains_recreated: bool,
    applied: Option<Applied>,
    stale_chains: BTreeMap<String, Instant>,
}

/// A transaction and the state once it has been applied.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// What to run.
    pub transaction: Transaction,
    /// The state after it succeeded.
    pub next: SyncState,
    /// Whether this is a full sync.
    pub full: bool,
}

fn element_key(e: &Element) -> (String, String) {
    (e.container.clone(), e.key_text())
}

fn desired_elements(desired: &Ruleset) -> BTreeMap<(String, String), Element> {
    desired
        .elements()
        .map(|e| (element_key(e), e.clone()))
        .collect()
}

impl SyncState {
    /// A process that has written nothing yet: the first sync is full.
    pub fn new(family: IpFamily) -> Self {
        SyncState {
            family,
            base_chains_recreated: false,
            applied: None,
            stale_chains: BTreeMap::new(),
        }
    }

    /// Whether the next sync must be full (nothing applied yet, or the last one failed).
    pub fn needs_full_sync(&self) -> bool {
        self.applied.is_none()
    }

    /// Whether syncing to `desired` must be full: [`Self::needs_full_sync`], or the table's
    /// skeleton (configuration, ServiceCIDRs) changed.
    pub fn needs_full_sync_for(&self, desired: &Ruleset) -> bool {
        self.applied
            .as_ref()
            .is_none_or(|a| a.setup != desired.setup_statements(false))
    }

    /// The state after a failed transaction: the next sync is full, and the stale-chain list is
    /// dropped (the full sync finds leftovers in the kernel).
    pub fn failed(&self) -> SyncState {
        SyncState {
            family: self.family,
            base_chains_recreated: self.base_chains_recreated,
            applied: None,
            stale_chains: BTreeMap::new(),
        }
    }

    /// Chains flushed and waiting to be deleted, with the time they were flushed.
    pub fn stale_chains(&self) -> &BTreeMap<String, Instant> {
        &self.stale_chains
    }

    /// When the next stale chain becomes deletable.
    pub fn next_stale_deadline(&self) -> Option<Instant> {
        self.stale_chains
            .values()
            .min()
            .map(|t| *t + STALE_CHAIN_DELAY)
    }

    /// The separate transaction that deletes chains flushed at least one second before `now`,
    /// and the state once it succeeded; `None` when there is nothing to delete yet.
    pub fn stale_chain_deletion(&self, now: Instant) -> Option<(Transaction, SyncState)> {
        let due: Vec<String> = self
            .stale_chains
            .iter()
            .filter(|(_, t)| **t + STALE_CHAIN_DELAY <= now)
            .map(|(c, _)| c.clone())
            .collect();
        if due.is_empty() {
            return None;
        }
        let mut tx = Transaction::new(self.family);
        let mut next = self.clone();
        for chain in due {
            next.stale_chains.remove(&chain);
            tx.push(Statement::DeleteChain(chain));
        }
        Some((tx, next))
    }

    /// The transaction from this state to `desired`: full when [`Self::needs_full_sync_for`],
    /// partial otherwise. `kernel` is what a full sync found in the table (if it could list it).
    pub fn plan(
        &self,
        desired: &Ruleset,
        kernel: Option<&KernelObjects>,
        now: Instant,
    ) -> SyncPlan {
        let full = self.needs_full_sync_for(desired);
        let family = self.family;
        let mut tx = Transaction::new(family);
        let empty = Applied {
            setup: Vec::new(),
            services: BTreeMap::new(),
            elements: BTreeMap::new(),
        };
        // A full sync rewrites everything, but what was applied still tells which chains and
        // sets exist.
        let applied = self.applied.as_ref().unwrap_or(&empty);

        // The service chains and affinity sets that exist now.
        let mut existing_chains: BTreeSet<String> = applied
            .services
            .values()
            .flat_map(|s| s.chains.keys().cloned())
            .chain(self.stale_chains.keys().cloned())
            .collect();
        let mut existing_sets: BTreeMap<String, Option<u32>> = applied
            .affinity_sets()
            .into_iter()
            .map(|(n, t)| (n, Some(t)))
            .collect();
        if let Some(kernel) = kernel {
            existing_chains.extend(
                kernel
                    .chains
                    .iter()
                    .filter(|c| is_service_chain(c))
                    .cloned(),
            );
            for (name, timeout) in kernel.sets.iter().filter(|(n, _)| is_affinity_set(n)) {
                existing_sets.insert(name.clone(), *timeout);
            }
        }

        if full {
            tx.statements
                .extend(desired.setup_statements(!self.base_chains_recreated));
        }

        // Services whose chains are (re)written.
        let rewritten: Vec<&ServiceObjects> = desired
            .services
            .iter()
            .filter(|(key, objects)| {
                full || applied
                    .services
                    .get(*key)
                    .is_none_or(|old| objects.chains_differ(old))
            })
            .map(|(_, objects)| objects)
            .collect();
        for objects in &rewritten {
            for name in objects.chains.keys() {
                tx.push(Statement::AddChain {
                    name: name.clone(),
                    base: None,
                    comment: None,
                });
                tx.push(Statement::FlushChain(name.clone()));
            }
        }
        for objects in &rewritten {
            for (name, timeout) in &objects.affinity_sets {
                // A set's timeout cannot be changed in place: its rules are flushed above.
                if let Some(Some(old)) = existing_sets.get(name)
                    && old != timeout
                {
                    tx.push(Statement::DeleteContainer(ContainerKind::Set, name.clone()));
                }
                tx.push(Statement::AddContainer {
                    kind: ContainerKind::Set,
                    name: name.clone(),
                    decl: affinity_set_decl(family, *timeout),
                });
            }
        }
        for objects in &rewritten {
            for (chain, rules) in &objects.chains {
                for rule in rules {
                    tx.push(Statement::AddRule {
                        chain: chain.clone(),
                        rule: rule.clone(),
                    });
                }
            }
        }

        // Elements: a full sync flushed the containers in its setup and adds them all.
        let wanted = desired_elements(desired);
        for (key, element) in &wanted {
            match applied.elements.get(key) {
                Some(old) if !full && old.value == element.value => {}
                Some(_) if !full => {
                    tx.push(Statement::DeleteElement(element.clone()));
                    tx.push(Statement::AddElement(element.clone()));
                }
                _ => tx.push(Statement::AddElement(element.clone())),
            }
        }
        if !full {
            for (key, element) in &applied.elements {
                if !wanted.contains_key(key) {
                    tx.push(Statement::DeleteElement(element.clone()));
                }
            }
        }

        // Chains no longer used: flushed now, deleted later.
        let desired_chains: BTreeSet<&String> = desired
            .services
            .values()
            .flat_map(|s| s.chains.keys())
            .collect();
        let mut stale_chains = self.stale_chains.clone();
        for chain in &existing_chains {
            if desired_chains.contains(chain) {
                stale_chains.remove(chain);
            } else if full || !stale_chains.contains_key(chain) {
                tx.push(Statement::FlushChain(chain.clone()));
                stale_chains.entry(chain.clone()).or_insert(now);
            }
        }
        // Affinity sets no longer used: deleted at once (their rules are flushed above).
        let desired_sets: BTreeSet<&String> = desired
            .services
            .values()
            .flat_map(|s| s.affinity_sets.keys())
            .collect();
        for name in existing_sets.keys() {
            if !desired_sets.contains(name) {
                tx.push(Statement::DeleteContainer(ContainerKind::Set, name.clone()));
            }
        }

        SyncPlan {
            transaction: tx,
            next: SyncState {
                family,
                base_chains_recreated: true,
                applied: Some(Applied {
                    setup: desired.setup_statements(false),
                    services: desired.services.clone(),
                    elements: wanted,
                }),
                stale_chains,
            },
            full,
        }
    }
}
