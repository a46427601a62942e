//! `svcplane controller-manager`: the controllers against a cluster, next to (or instead of)
//! kube-controller-manager's, with Lease leader election, `/healthz`, `/readyz`, `/metrics` and
//! a graceful SIGTERM that vacates the lease.

pub mod config_file;
pub mod flags;
pub mod selection;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use controllers::allocation_repair::{RepairConfig, RepairMetrics, register};
use controllers::endpoints_controller::EndpointsControllerConfig;
use controllers::endpointslice::MaxEndpointsPerSlice;
use controllers::endpointslice_controller::EndpointSliceControllerConfig;
use controllers::kubernetes_service::ReconcilerType;
use controllers::kubernetes_service_controller::KubernetesServiceConfig;
use controllers::leader_election::{Claim, LeaderElector, LeaseParams, WriteGate};
use controllers::mirroring_controller::MirroringControllerConfig;
use controllers::runtime::CacheSyncSignal;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use self::flags::ControllerManagerArgs;
use self::selection::{ControllerName, enabled_controllers};
use crate::component::{Component, first_to_exit, shutdown_channel, start_in_order, stop_all};
use crate::control_plane;
use crate::flags::UsageError;
use crate::health::{self, HealthState};

/// The User-Agent prefix of every request, so an API server's audit log names the writer.
pub const USER_AGENT_PREFIX: &str = "svcplane-controller-manager";

/// The flag names a config file may use.
pub fn known_keys() -> BTreeSet<String> {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct Probe {
        #[command(flatten)]
        args: ControllerManagerArgs,
    }
    Probe::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .collect()
}

/// Reads `--config` from the raw arguments after the subcommand and returns the arguments with
/// the file's flags spliced in before the command line's (so the command line wins).
pub fn splice_config_file(args: Vec<String>) -> Result<Vec<String>, UsageError> {
    let Some(sub) = args.iter().position(|a| a == "controller-manager") else {
        return Ok(args);
    };
    let mut path = None;
    let mut i = sub + 1;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            break;
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(value.to_string());
        } else if arg == "--config" {
            path = args.get(i + 1).cloned();
        }
        i += 1;
    }
    let Some(path) = path else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UsageError(
            config_file::ConfigFileError::Read {
                path: path.clone(),
                reason: e.to_string(),
            }
            .to_string(),
        )
    })?;
    let flags = config_file::flags_from_yaml(&path, &text, &known_keys())
        .map_err(|e| UsageError(e.to_string()))?;
    let mut spliced = args[..=sub].to_vec();
    spliced.extend(flags);
    spliced.extend_from_slice(&args[sub + 1..]);
    Ok(spliced)
}

/// This replica's identity: the host name and a random suffix, as client-go's.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "svcplane".to_string());
    format!("{host}_{:016x}", rand::random::<u64>())
}

fn leader_election_checks(args: &ControllerManagerArgs) -> Result<(), UsageError> {
    if !args.leader_elect {
        return Ok(());
    }
    // client-go's NewLeaderElector checks, with its texts.
    if args.leader_elect_lease_duration <= args.leader_elect_renew_deadline {
        return Err(UsageError(
            "leaseDuration must be greater than renewDeadline".into(),
        ));
    }
    if args.leader_elect_renew_deadline <= args.leader_elect_retry_period.mul_f64(1.2) {
        return Err(UsageError(
            "renewDeadline must be greater than retryPeriod*JitterFactor".into(),
        ));
    }
    Ok(())
}

/// Runs until SIGTERM/SIGINT (exit 0) or until leadership, once held, is lost (error).
pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let termination = crate::signals::termination()?;
    let enabled = enabled_controllers(&args.controllers).map_err(UsageError)?;
    leader_election_checks(&args)?;
    let max_endpoints_per_slice = MaxEndpointsPerSlice::new(args.max_endpoints_per_slice)
        .map_err(|e| UsageError(e.to_string()))?;
    let reconciler =
        ReconcilerType::from_flag(&args.endpoint_reconciler_type, args.apiserver_count)
            .ok_or_else(|| UsageError("invalid --endpoint-reconciler-type".into()))?;
    let slice_config = EndpointSliceControllerConfig {
        concurrent_service_endpoint_syncs: args.concurrent_service_endpoint_syncs,
        max_endpoints_per_slice,
        endpoint_updates_batch_period: args.endpointslice_updates_batch_period,
        ..EndpointSliceControllerConfig::default()
    };
    slice_config
        .validate()
        .map_err(|e| UsageError(e.to_string()))?;

    let identity = identity();
    let agent = format!(
        "{USER_AGENT_PREFIX}/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    let config = crate::client::kube_config(args.kubeconfig.as_ref(), &agent).await?;
    // The elector writes the Lease whatever the claim; everything else goes through the gate.
    let client = kube::Client::try_from(config.clone())?;
    let elector = args.leader_elect.then(|| {
        LeaderElector::spawn(
            client.clone(),
            LeaseParams {
                lease_duration: args.leader_elect_lease_duration,
                renew_deadline: args.leader_elect_renew_deadline,
                retry_period: args.leader_elect_retry_period,
                ..LeaseParams::new(
                    &args.leader_elect_resource_name,
                    &args.leader_elect_resource_namespace,
                    &identity,
                )
            },
        )
    });
    let gate = elector
        .as_ref()
        .map_or_else(WriteGate::always, |e| e.gate());
    let client = crate::gated_client::gated_client(config, gate.clone())?;
    let controllers: Vec<&str> = enabled.iter().map(|c| c.as_str()).collect();
    tracing::info!(%identity, controllers = %controllers.join(","),
        leader_elect = args.leader_elect, "starting");

    let metrics = Arc::new(Mutex::new(Registry::default()));
    let mut signals: Vec<(String, CacheSyncSignal)> = Vec::new();
    let mut components = Vec::new();
    for controller in &enabled {
        let signal = CacheSyncSignal::default();
        let component = build(
            *controller,
            &args,
            &slice_config,
            reconciler,
            &gate,
            &signal,
            &metrics,
            &identity,
        );
        if *controller != ControllerName::KubernetesService {
            signals.push((format!("informer-sync:{}", controller.as_str()), signal));
        }
        components.push(component);
    }

    let (trigger, shutdown) = shutdown_channel();
    let readiness_signals = signals.clone();
    let state = HealthState {
        readiness: Arc::new(move || {
            readiness_signals
                .iter()
                .map(|(name, s)| (name.clone(), s.is_synced()))
                .collect()
        }),
        metrics: metrics.clone(),
    };
    let (serving, health_task) = health::serve(
        "--bind-address and --port",
        args.serving_address(),
        state,
        shutdown.clone(),
    )
    .await?;
    tracing::info!(address = %serving, "serving /healthz, /readyz and /metrics");

    let running = vec![("health", health_task)];
    let mut running = match start_in_order(components, &client, &shutdown, &trigger, running).await
    {
        Ok(running) => running,
        Err(e) => {
            if let Some(elector) = elector {
                elector.shutdown().await;
            }
            return Err(e);
        }
    };
    tracing::info!("all controllers synced");

    let mut claims = elector.as_ref().map(|e| e.claims());
    let master_status = leader_status_gauge(&metrics, &args.leader_elect_resource_name);
    let outcome = tokio::select! {
        signal = termination => {
            tracing::info!(signal, "shutting down");
            Ok(())
        }
        () = leadership_lost(claims.as_mut(), &master_status) => {
            Err(anyhow::anyhow!("leaderelection lost"))
        }
        failure = first_to_exit(&mut running) => Err(failure),
    };
    trigger.fire();
    stop_all(running).await;
    if let Some(elector) = elector {
        // Vacates the lease if we hold it, so a successor need not wait for it to expire.
        elector.shutdown().await;
        tracing::info!("leader election stopped");
    }
    tracing::info!("stopped");
    outcome
}

/// Resolves when a claim this replica held is replaced by another holder or by nobody, as
/// kube-controller-manager exits on `OnStoppedLeading`; never without leader election.
async fn leadership_lost(
    claims: Option<&mut tokio::sync::watch::Receiver<Claim>>,
    master_status: &Gauge,
) {
    let Some(claims) = claims else {
        master_status.set(1);
        return std::future::pending().await;
    };
    let mut held = false;
    loop {
        match &*claims.borrow_and_update() {
            Claim::Held { .. } => {
                if !held {
                    tracing::info!("became leader");
                    master_status.set(1);
                }
                held = true;
            }
            Claim::Other { holder } if held => {
                tracing::error!(%holder, "leadership lost to another replica");
                return;
            }
            Claim::Unknown if held => {
                tracing::error!("leadership lost: could not renew the lease");
                return;
            }
            Claim::Other { .. } | Claim::Unknown => {}
        }
        if claims.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// client-go's `leader_election_master_status{name}`: 1 while this replica leads.
fn leader_status_gauge(metrics: &Arc<Mutex<Registry>>, lease: &str) -> Gauge {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            family.clone(),
        );
    family
        .get_or_create(&vec![("name".to_string(), lease.to_string())])
        .clone()
}

#[allow(clippy::too_many_arguments)]
fn build(
    controller: ControllerName,
    args: &ControllerManagerArgs,
    slice_config: &EndpointSliceControllerConfig,
    reconciler: ReconcilerType,
    gate: &WriteGate,
    signal: &CacheSyncSignal,
    metrics: &Arc<Mutex<Registry>>,
    identity: &str,
) -> Component {
    match controller {
        ControllerName::EndpointSlice => control_plane::endpointslice(
            EndpointSliceControllerConfig {
                write_gate: gate.clone(),
                caches_synced: signal.clone(),
                ..slice_config.clone()
            },
            metrics.clone(),
        ),
        ControllerName::Endpoint => control_plane::endpoints(EndpointsControllerConfig {
            concurrent_endpoint_syncs: args.concurrent_endpoint_syncs,
            endpoint_updates_batch_period: args.endpoint_updates_batch_period,
            write_gate: gate.clone(),
            caches_synced: signal.clone(),
        }),
        ControllerName::EndpointSliceMirroring => {
            control_plane::mirroring(MirroringControllerConfig {
                mirroring_concurrent_service_endpoint_syncs: args
                    .mirroring_concurrent_service_endpoint_syncs,
                mirroring_max_endpoints_per_subset: args.mirroring_max_endpoints_per_subset,
                mirroring_endpointslice_updates_batch_period: args
                    .mirroring_endpointslice_updates_batch_period,
                write_gate: gate.clone(),
                caches_synced: signal.clone(),
            })
        }
        ControllerName::AllocationRepair => {
            let repair_metrics = RepairMetrics::default();
            register(
                &repair_metrics,
                &mut metrics.lock().unwrap_or_else(|e| e.into_inner()),
            );
            control_plane::allocation_repair(
                RepairConfig {
                    mode: args.allocation_mode.into(),
                    instance: identity.to_string(),
                    write_gate: gate.clone(),
                    caches_synced: signal.clone(),
                    ..RepairConfig::new(
                        args.service_cluster_ip_range.clone(),
                        args.service_node_port_range,
                    )
                },
                repair_metrics,
            )
        }
        ControllerName::KubernetesService => {
            let advertise: Vec<IpAddr> = args.advertise_address.into_iter().collect();
            control_plane::kubernetes_service(
                KubernetesServiceConfig {
                    service_cluster_ip_ranges: args
                        .service_cluster_ip_range
                        .all()
                        .into_iter()
                        .map(|c| c.net())
                        .collect(),
                    advertise_addresses: if advertise.is_empty() {
                        KubernetesServiceConfig::default().advertise_addresses
                    } else {
                        advertise
                    },
                    secure_port: i32::from(args.secure_port),
                    reconciler,
                    write_gate: gate.clone(),
                    ..KubernetesServiceConfig::default()
                },
                false,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_config_file_goes_before_the_command_line() {
        let dir = std::env::temp_dir().join(format!("svcplane-cm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "max-endpoints-per-slice: 50\nport: 1234\n").unwrap();
        let path = file.display().to_string();
        let spliced = splice_config_file(strings(&[
            "svcplane",
            "--log-format",
            "json",
            "controller-manager",
            "--config",
            &path,
            "--port=99",
        ]))
        .unwrap();
        assert_eq!(
            spliced,
            strings(&[
                "svcplane",
                "--log-format",
                "json",
                "controller-manager",
                "--max-endpoints-per-slice=50",
                "--port=1234",
                "--config",
                &path,
                "--port=99",
            ])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_flag_is_a_config_key() {
        let keys = known_keys();
        for key in [
            "max-endpoints-per-slice",
            "concurrent-service-endpoint-syncs",
            "endpointslice-updates-batch-period",
            "concurrent-endpoint-syncs",
            "mirroring-concurrent-service-endpoint-syncs",
            "mirroring-max-endpoints-per-subset",
            "mirroring-endpointslice-updates-batch-period",
            "service-cluster-ip-range",
            "service-node-port-range",
            "endpoint-reconciler-type",
            "apiserver-count",
            "advertise-address",
            "secure-port",
            "allocation-mode",
            "leader-elect",
            "leader-elect-lease-duration",
            "leader-elect-renew-deadline",
            "leader-elect-retry-period",
            "leader-elect-resource-name",
            "leader-elect-resource-namespace",
            "kubeconfig",
            "controllers",
            "bind-address",
            "port",
        ] {
            assert!(keys.contains(key), "{key}");
        }
    }
}
