//! The offline tools: `svcplane validate`, `svcplane slices` and `svcplane crds` — the same pure
//! code as the webhook and the controllers, on files.

use std::path::PathBuf;
use std::process::ExitCode;

use allocator::{PortRange, ServiceClusterIpRanges};
use controllers::endpointslice::MaxEndpointsPerSlice;

use crate::flags::{parse_cluster_ip_ranges, parse_node_port_range};

/// Output format of the offline tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateOutput {
    /// What kubectl prints for each refusal.
    Text,
    /// The apiserver's Status objects, one JSON document per line.
    Json,
}

/// Flags of `svcplane validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Service manifests (YAML or JSON, several documents, `List`s; `-` reads standard input),
    /// checked as one set, as applying them together would.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ValidateOutput::Text)]
    output: ValidateOutput,
    /// ClusterIP range(s) the Services are checked against.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cluster_ip_ranges)]
    service_cluster_ip_range: ServiceClusterIpRanges,
    /// NodePort range the Services are checked against.
    #[arg(long, default_value = "30000-32767", value_parser = parse_node_port_range)]
    service_node_port_range: PortRange,
}

/// Exit 0 when every Service is valid, 1 when any is invalid, 2 when an input is unreadable or
/// undecodable.
pub fn validate(args: ValidateArgs) -> ExitCode {
    let ranges = crate::flags::validation_ranges(
        &args.service_cluster_ip_range,
        args.service_node_port_range,
    );
    let report = webhook::offline::validate_files(&args.files, &ranges);
    match args.output {
        ValidateOutput::Text => print!("{}", report.kubectl_text()),
        ValidateOutput::Json => print!("{}", report.json_text()),
    }
    eprint!("{}", report.errors_text());
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(2))
}

/// Output format of `svcplane slices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectOutput {
    /// A YAML stream.
    Yaml,
    /// A JSON `List`.
    Json,
}

/// Flags of `svcplane slices`.
#[derive(Debug, clap::Args)]
pub struct SlicesArgs {
    /// Services, Pods, Nodes and existing EndpointSlices (YAML or JSON, several documents, `List`s).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ObjectOutput::Yaml)]
    output: ObjectOutput,
    /// Maximum endpoints in one EndpointSlice (1..1000).
    #[arg(long, default_value_t = 100)]
    max_endpoints_per_slice: i64,
    /// ClusterIP range(s) a Service without a clusterIP is assumed to get one from, as the
    /// apiserver would allocate it.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cluster_ip_ranges)]
    service_cluster_ip_range: ServiceClusterIpRanges,
}

/// Prints the EndpointSlices and Endpoints the controllers would write; exit 2 on bad input.
pub fn slices(args: SlicesArgs) -> ExitCode {
    let max = match MaxEndpointsPerSlice::new(args.max_endpoints_per_slice) {
        Ok(max) => max,
        Err(e) => {
            eprintln!("svcplane: {e}");
            return ExitCode::from(2);
        }
    };
    let mut inputs = match controllers::offline::read_files(&args.files) {
        Ok(inputs) => inputs,
        Err(e) => {
            eprintln!("svcplane: {e}");
            return ExitCode::from(2);
        }
    };
    // Files hold what a user wrote, not what the apiserver stored: store each Service as the
    // apiserver would (defaults, families, a ClusterIP) before planning, and say what was assumed.
    let ranges = webhook::ServiceRanges {
        cluster_ip: args
            .service_cluster_ip_range
            .all()
            .into_iter()
            .map(|c| c.net())
            .collect(),
        ..webhook::ServiceRanges::default()
    };
    let mut stored = Vec::new();
    for service in std::mem::take(&mut inputs.services) {
        match webhook::offline::as_stored(&service, &ranges) {
            Ok((service, notes)) => {
                stored.push(service);
                inputs.warnings.extend(notes);
            }
            Err(status) => inputs.warnings.push(format!(
                "the apiserver would refuse this Service, so nothing is planned for it: {}",
                status.message
            )),
        }
    }
    inputs.services = stored;
    let output = controllers::offline::plan_inputs(&inputs, max);
    for warning in &output.warnings {
        eprintln!("Warning: {warning}");
    }
    let rendered = match args.output {
        ObjectOutput::Yaml => output.to_yaml(),
        ObjectOutput::Json => output.to_json(),
    };
    match rendered {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("svcplane: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CRD YAML generated from the Rust types, exactly as checked in under `config/crd/`.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let crd = allocator::registry::crd();
    let body = serde_saphyr::to_string(&crd)?;
    Ok(format!(
        "# Generated by `svcplane crds` from the Rust types; do not edit.\n{body}"
    ))
}

/// `svcplane crds`.
pub fn crds() -> ExitCode {
    match crds_yaml() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("svcplane: cannot render the CRDs: {e}");
            ExitCode::FAILURE
        }
    }
}
