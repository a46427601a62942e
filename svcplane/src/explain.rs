//! `svcplane explain service NAME`: gathers a Service, its namespace's pods, its
//! EndpointSlices and Endpoints, and the Services a new pod's environment comes from — from a
//! cluster or from files — and prints what `discovery::explain` makes of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use discovery::explain::{ExplainInputs, Explanation, explain};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

/// Flags of `svcplane explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(subcommand)]
    what: ExplainWhat,
}

#[derive(Debug, clap::Subcommand)]
enum ExplainWhat {
    /// Explain a Service: its selector and pods, ports, EndpointSlices, the env vars pods get,
    /// and why it has (no) endpoints.
    Service(ServiceArgs),
}

/// Output format of `svcplane explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExplainOutput {
    /// For people.
    #[default]
    Text,
    /// The whole explanation as one JSON object, for tools.
    Json,
}

/// Flags of `svcplane explain service`.
#[derive(Debug, clap::Args)]
struct ServiceArgs {
    /// The Service's name.
    name: String,
    /// The Service's namespace (default: the kubeconfig context's, or `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Path to a kubeconfig (default: KUBECONFIG, ~/.kube/config or the in-cluster config).
    #[arg(long, conflicts_with = "files")]
    kubeconfig: Option<PathBuf>,
    /// Explain from manifests instead of a cluster: Services, Pods, EndpointSlices, Endpoints
    /// and Nodes (YAML or JSON, several documents, `List`s). Objects without a namespace are
    /// taken to be in `--namespace`.
    #[arg(short = 'f', long = "filename", num_args = 1..)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: ExplainOutput,
    /// The cluster domain the DNS section's names are in.
    #[arg(long, default_value = dns::config::DEFAULT_ZONE, value_parser = crate::dns_server::parse_zone)]
    zone: String,
}

/// The objects an explanation needs, owned.
struct Gathered {
    service: Service,
    pods: Vec<Pod>,
    endpoint_slices: Vec<EndpointSlice>,
    endpoints: Vec<Endpoints>,
    services: Vec<Service>,
    nodes: Option<Vec<Node>>,
    slices_observed: bool,
}

impl Gathered {
    fn explain(&self, dns: &dns::DnsConfig) -> Explanation {
        explain(&ExplainInputs {
            service: &self.service,
            pods: &self.pods,
            endpoint_slices: &self.endpoint_slices,
            endpoints: &self.endpoints,
            services: &self.services,
            nodes: self.nodes.as_deref(),
            dns,
            slices_observed: self.slices_observed,
        })
    }
}

/// `svcplane explain ...`: prints the explanation; an unknown Service or an unreadable input
/// is an error.
pub async fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let ExplainWhat::Service(ServiceArgs {
        name,
        namespace,
        kubeconfig,
        files,
        output,
        zone,
    }) = args.what;
    // The zone was checked as a flag; records use the TTL svcplane's DNS serves by default.
    let dns = dns::DnsConfig::new(&zone, dns::config::DEFAULT_TTL)
        .map_err(|e| crate::flags::UsageError(e.to_string()))?;
    let gathered = if files.is_empty() {
        from_cluster(&name, namespace, kubeconfig.as_ref()).await?
    } else {
        from_files(&name, namespace.as_deref().unwrap_or("default"), &files)?
    };
    let explanation = gathered.explain(&dns);
    match output {
        ExplainOutput::Text => print!("{}", explanation.to_text()),
        ExplainOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&explanation).context("cannot render the explanation")?
        ),
    }
    Ok(())
}

fn not_found(name: &str) -> anyhow::Error {
    // kubectl's words, so that scripts grepping for them keep working.
    anyhow::anyhow!("services \"{name}\" not found")
}

fn from_files(name: &str, namespace: &str, files: &[PathBuf]) -> anyhow::Result<Gathered> {
    let mut inputs = controllers::offline::read_files(files)?;
    for warning in &inputs.warnings {
        eprintln!("Warning: {warning}");
    }
    let default_namespace =
        |meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            if meta.namespace.as_deref().unwrap_or("").is_empty() {
                meta.namespace = Some(namespace.to_owned());
            }
        };
    inputs
        .services
        .iter_mut()
        .for_each(|s| default_namespace(&mut s.metadata));
    inputs
        .pods
        .iter_mut()
        .for_each(|p| default_namespace(&mut p.metadata));
    inputs
        .endpoint_slices
        .iter_mut()
        .for_each(|s| default_namespace(&mut s.metadata));
    inputs
        .endpoints
        .iter_mut()
        .for_each(|e| default_namespace(&mut e.metadata));
    let service = inputs
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
        })
        .cloned()
        .ok_or_else(|| not_found(name))?;
    let has_master = inputs.services.iter().any(|s| {
        s.metadata.namespace.as_deref() == Some(discovery::env_vars::MASTER_SERVICE_NAMESPACE)
            && s.metadata.name.as_deref() == Some(discovery::env_vars::MASTER_SERVICE)
    });
    if !has_master {
        eprintln!(
            "Warning: the files hold no Service default/kubernetes, so the environment leaves out the KUBERNETES_* variables every pod gets"
        );
    }
    Ok(Gathered {
        service,
        // Files hold no more than a user put in them: slices count only if some were given.
        slices_observed: !inputs.endpoint_slices.is_empty(),
        nodes: (!inputs.nodes.is_empty()).then_some(inputs.nodes),
        pods: inputs.pods,
        endpoint_slices: inputs.endpoint_slices,
        endpoints: inputs.endpoints,
        services: inputs.services,
    })
}

async fn from_cluster(
    name: &str,
    namespace: Option<String>,
    kubeconfig: Option<&PathBuf>,
) -> anyhow::Result<Gathered> {
    let config = crate::client::kube_config(kubeconfig, "svcplane-explain").await?;
    let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let service = services
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read service {namespace}/{name}"))?
        .ok_or_else(|| not_found(name))?;
    let mut pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list pods in {namespace}"))?
        .items;
    let selector = service.spec.as_ref().and_then(|s| s.selector.clone());
    pods.extend(pods_elsewhere(&client, &namespace, selector.as_ref()).await);
    let endpoint_slices = Api::<EndpointSlice>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!(
            "{}={name}",
            controllers::endpointslice::LABEL_SERVICE_NAME
        )))
        .await
        .with_context(|| format!("cannot list endpointslices in {namespace}"))?
        .items;
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), &namespace)
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read endpoints {namespace}/{name}"))?
        .into_iter()
        .collect();
    let mut env_services = services
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list services in {namespace}"))?
        .items;
    if namespace != discovery::env_vars::MASTER_SERVICE_NAMESPACE {
        // Every pod gets `default/kubernetes`; a user without access to `default` still gets
        // the rest of the explanation.
        let master = Api::<Service>::namespaced(
            client.clone(),
            discovery::env_vars::MASTER_SERVICE_NAMESPACE,
        )
        .get_opt(discovery::env_vars::MASTER_SERVICE)
        .await;
        match master {
            Ok(Some(master)) => env_services.push(master),
            Ok(None) => {}
            Err(e) => eprintln!(
                "Warning: cannot read service default/kubernetes, so the environment leaves out its variables: {}",
                gocompat::errors::api_error_text(&e)
            ),
        }
    }
    Ok(Gathered {
        service,
        pods,
        endpoint_slices,
        endpoints,
        services: env_services,
        // Best effort: reading Nodes takes a cluster-wide permission many users lack.
        nodes: Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .ok()
            .map(|list| list.items),
        slices_observed: true,
    })
}

/// Pods of other namespaces that the selector would match, to say so when none in the
/// Service's namespace does; best effort (listing across namespaces may be forbidden).
async fn pods_elsewhere(
    client: &kube::Client,
    namespace: &str,
    selector: Option<&BTreeMap<String, String>>,
) -> Vec<Pod> {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let params = ListParams::default().labels(&labels).limit(50);
    match Api::<Pod>::all(client.clone()).list(&params).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() != Some(namespace))
            .collect(),
        Err(_) => Vec::new(),
    }
}
