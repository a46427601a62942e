//! Leader election on a `coordination.k8s.io/v1` Lease, with kube-controller-manager's timings.
//!
//! In the style of linkerd's kubert lease: the current claim is published on a `watch` channel,
//! every write is gated on holding an unexpired claim ([`WriteGate`]), and the lease is vacated on
//! shutdown so a successor need not wait for it to expire.
//!
//! Expiry is judged on this process's monotonic clock, as client-go does: a claim is ours until
//! `lease_duration` after the moment we *sent* the renewal that succeeded. A leader that was paused
//! (SIGSTOP, a long GC, a VM freeze) and wakes after that moment stops writing before it even
//! tries to renew — by then another replica may hold the lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::Api;
use kuberun::{Shutdown, ShutdownTrigger, shutdown_channel};
use tokio::sync::watch;
use tokio::time::Instant;

/// kube-controller-manager's `--leader-elect-*` settings.
#[derive(Debug, Clone)]
pub struct LeaseParams {
    /// `--leader-elect-resource-name`.
    pub name: String,
    /// `--leader-elect-resource-namespace`.
    pub namespace: String,
    /// This replica's identity (hostname + unique suffix upstream).
    pub identity: String,
    /// `--leader-elect-lease-duration` (15s).
    pub lease_duration: Duration,
    /// `--leader-elect-renew-deadline` (10s).
    pub renew_deadline: Duration,
    /// `--leader-elect-retry-period` (2s).
    pub retry_period: Duration,
}

impl LeaseParams {
    /// Upstream's defaults for a lease `name` in `namespace`.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Who holds the lease, as this replica last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody we know of (start-up, or a vacated lease).
    Unknown,
    /// This replica, until the local instant given.
    Held { until: Instant },
    /// Another replica.
    Other { holder: String },
}

/// Why a write was not sent: another replica holds (or may hold) the leader lease.
pub const NOT_LEADER_ERROR: &str = "not the leader: the leader lease is not held";

/// A write refused by the [`WriteGate`]; its text is [`NOT_LEADER_ERROR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{NOT_LEADER_ERROR}")]
pub struct NotLeader;

/// A cheap handle that says whether this replica may write now.
#[derive(Clone, Debug)]
pub struct WriteGate {
    claim: Option<watch::Receiver<Claim>>,
}

impl Default for WriteGate {
    fn default() -> Self {
        Self::always()
    }
}

/// Two gates are equal when they follow the same elector (so controller configs stay `Eq`).
impl PartialEq for WriteGate {
    fn eq(&self, other: &Self) -> bool {
        match (&self.claim, &other.claim) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_channel(b),
            _ => false,
        }
    }
}

impl Eq for WriteGate {}

impl WriteGate {
    /// A gate that always allows writes (leader election off).
    pub fn always() -> Self {
        Self { claim: None }
    }

    /// Whether this replica holds an unexpired claim now.
    pub fn allows_writes(&self) -> bool {
        match &self.claim {
            None => true,
            Some(rx) => matches!(*rx.borrow(), Claim::Held { until } if Instant::now() < until),
        }
    }

    /// `Ok` when this replica may write now: every controller asks before each write.
    pub fn check(&self) -> Result<(), NotLeader> {
        if self.allows_writes() {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }

    /// Waits until writes are allowed (returns at once when they are).
    pub async fn wait_for_leadership(&mut self) {
        let Some(rx) = self.claim.as_mut() else {
            return;
        };
        loop {
            if matches!(*rx.borrow_and_update(), Claim::Held { until } if Instant::now() < until) {
                return;
            }
            if rx.changed().await.is_err() {
                // The elector stopped: never leader again.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Errors talking to the Lease API.
#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    /// The API answered with an error.
    #[error("lease {namespace}/{name}: {}", gocompat::api_error_text(source))]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// A running elector.
pub struct LeaderElector {
    claim: watch::Receiver<Claim>,
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderElector {
    /// Starts competing for the lease in the background.
    pub fn spawn(client: kube::Client, params: LeaseParams) -> Self {
        let (tx, claim) = watch::channel(Claim::Unknown);
        let (stop, stop_rx) = shutdown_channel();
        let task = tokio::spawn(run(
            Api::namespaced(client, &params.namespace),
            params,
            tx,
            stop_rx,
        ));
        Self { claim, stop, task }
    }

    /// A gate for writers.
    pub fn gate(&self) -> WriteGate {
        WriteGate {
            claim: Some(self.claim.clone()),
        }
    }

    /// The claim channel, for those who want to react to changes.
    pub fn claims(&self) -> watch::Receiver<Claim> {
        self.claim.clone()
    }

    /// Stops competing and, if this replica holds the lease, vacates it.
    pub async fn shutdown(self) {
        self.stop.fire();
        let _ = self.task.await;
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// The decision after reading the lease: take it, keep it, or leave it to its holder.
#[derive(Debug, PartialEq, Eq)]
enum Observation {
    /// Absent, expired, vacated, or ours: write our claim.
    Acquirable,
    /// Held by another replica whose lease has not expired (by our clock).
    HeldByOther(String),
}

/// Tracks when we first saw the current holder's latest renewal, so expiry uses our clock.
struct Observed {
    record: Option<(String, Option<MicroTime>)>,
    at: Instant,
}

fn observe(
    lease: Option<&Lease>,
    params: &LeaseParams,
    observed: &mut Observed,
    now: Instant,
) -> Observation {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Observation::Acquirable;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() || holder == params.identity {
        return Observation::Acquirable;
    }
    let record = Some((holder.clone(), spec.renew_time.clone()));
    if observed.record != record {
        observed.record = record;
        observed.at = now;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(params.lease_duration);
    if now < observed.at + duration {
        Observation::HeldByOther(holder)
    } else {
        Observation::Acquirable
    }
}

async fn run(api: Api<Lease>, params: LeaseParams, claim: watch::Sender<Claim>, stop: Shutdown) {
    let mut observed = Observed {
        record: None,
        at: Instant::now(),
    };
    let mut last_renewal: Option<Instant> = None;
    loop {
        if stop.is_requested() {
            break;
        }
        let sent_at = Instant::now();
        match try_acquire_or_renew(&api, &params, &mut observed, sent_at).await {
            Ok(None) => {
                last_renewal = Some(sent_at);
                claim.send_replace(Claim::Held {
                    until: sent_at + params.lease_duration,
                });
            }
            Ok(Some(holder)) => {
                last_renewal = None;
                claim.send_replace(Claim::Other { holder });
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election: renewal failed");
                // Give up leadership once renewals have failed for renew_deadline.
                if last_renewal.is_some_and(|t| Instant::now() >= t + params.renew_deadline) {
                    last_renewal = None;
                    claim.send_replace(Claim::Unknown);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(params.retry_period) => {}
            () = stop.clone().wait() => {}
        }
    }
    let held = matches!(*claim.borrow(), Claim::Held { until } if Instant::now() < until);
    claim.send_replace(Claim::Unknown);
    if held && let Err(e) = vacate(&api, &params).await {
        tracing::warn!(error = %e, "leader election: could not vacate the lease");
    }
}

/// One round: `Ok(None)` when we hold the lease after it, `Ok(Some(holder))` when someone else does.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    params: &LeaseParams,
    observed: &mut Observed,
    now: Instant,
) -> Result<Option<String>, LeaderElectionError> {
    let err = |source| LeaderElectionError::Api {
        namespace: params.namespace.clone(),
        name: params.name.clone(),
        source,
    };
    let current = api.get_opt(&params.name).await.map_err(err)?;
    if let Observation::HeldByOther(holder) = observe(current.as_ref(), params, observed, now) {
        return Ok(Some(holder));
    }
    let duration_secs = params.lease_duration.as_secs() as i32;
    match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(params.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(params.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now_micro()),
                    renew_time: Some(now_micro()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&crate::runtime::write_params(), &lease).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(String::new())),
                Err(e) => Err(err(e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let ours = spec.holder_identity.as_deref() == Some(params.identity.as_str());
            if !ours {
                spec.holder_identity = Some(params.identity.clone());
                spec.acquire_time = Some(now_micro());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(duration_secs);
            spec.renew_time = Some(now_micro());
            // The resourceVersion we read is the precondition: a concurrent claimant makes this 409.
            match api
                .replace(&params.name, &crate::runtime::write_params(), &lease)
                .await
            {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(String::new())),
                Err(e) => Err(err(e)),
            }
        }
    }
}

/// Clears the holder so the next replica can take the lease at once.
async fn vacate(api: &Api<Lease>, params: &LeaseParams) -> Result<(), LeaderElectionError> {
    let err = |source| LeaderElectionError::Api {
        namespace: params.namespace.clone(),
        name: params.name.clone(),
        source,
    };
    let Some(mut lease) = api.get_opt(&params.name).await.map_err(err)? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(params.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now_micro());
    api.replace(&params.name, &crate::runtime::write_params(), &lease)
        .await
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renew_secs: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: (!holder.is_empty()).then(|| holder.to_string()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(renew_secs).unwrap())),
                ..Default::default()
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn another_holder_expires_by_our_clock_not_theirs() {
        let params = LeaseParams::new("l", "kube-system", "me");
        let start = Instant::now();
        let mut observed = Observed {
            record: None,
            at: start,
        };
        let other = lease("other", 1_000);
        assert_eq!(
            observe(Some(&other), &params, &mut observed, start),
            Observation::HeldByOther("other".into())
        );
        // Same renewTime seen 14 s later: still theirs; at 15 s it has expired.
        assert!(matches!(
            observe(
                Some(&other),
                &params,
                &mut observed,
                start + Duration::from_secs(14)
            ),
            Observation::HeldByOther(_)
        ));
        assert_eq!(
            observe(
                Some(&other),
                &params,
                &mut observed,
                start + Duration::from_secs(15)
            ),
            Observation::Acquirable
        );
        // A renewal (new renewTime) restarts the clock.
        let renewed = lease("other", 1_002);
        assert!(matches!(
            observe(
                Some(&renewed),
                &params,
                &mut observed,
                start + Duration::from_secs(16)
            ),
            Observation::HeldByOther(_)
        ));
    }

    #[test]
    fn absent_vacated_or_own_leases_are_acquirable() {
        let params = LeaseParams::new("l", "kube-system", "me");
        let mut observed = Observed {
            record: None,
            at: Instant::now(),
        };
        let now = Instant::now();
        assert_eq!(
            observe(None, &params, &mut observed, now),
            Observation::Acquirable
        );
        assert_eq!(
            observe(Some(&lease("", 5)), &params, &mut observed, now),
            Observation::Acquirable
        );
        assert_eq!(
            observe(Some(&lease("me", 5)), &params, &mut observed, now),
            Observation::Acquirable
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_closes_when_the_claim_expires() {
        let (tx, rx) = watch::channel(Claim::Held {
            until: Instant::now() + Duration::from_secs(15),
        });
        let gate = WriteGate { claim: Some(rx) };
        assert!(gate.allows_writes());
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(
            !gate.allows_writes(),
            "a paused leader stops writing once its claim has expired"
        );
        tx.send_replace(Claim::Other { holder: "x".into() });
        assert!(!gate.allows_writes());
        assert!(WriteGate::always().allows_writes());
    }
}
