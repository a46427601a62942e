//! `/metrics` in the Prometheus text exposition format 0.0.4, byte for byte as client_golang
//! (and so every upstream Kubernetes component) writes it. The admission server answers with it,
//! and so do svcplane's plain-HTTP health listeners.
//!
//! prometheus-client only writes OpenMetrics text and keeps its encoders private, so this module
//! re-reads that text and writes it the way `expfmt.MetricFamilyToText` does after
//! `prometheus.Registry.Gather`:
//! * a counter sample carries the family name as registered (OpenMetrics appends `_total`; a family
//!   registered as `allocation_total` is thus exposed as `allocation_total`, never
//!   `allocation_total_total`),
//! * histogram series are written `_bucket`… (with `le` last), `_sum`, `_count`,
//! * no `_created`, `# UNIT`, exemplars or `# EOF`,
//! * the `.` prometheus-client appends to every help text is dropped,
//! * values are formatted like Go's `strconv.FormatFloat(v, 'g', -1, 64)`,
//! * families sorted by name, series by label values, labels by name; families without a series
//!   are left out.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use prometheus_client::registry::Registry;

/// The `Content-Type` of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the registry could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsTextError {
    /// prometheus-client's encoder failed.
    #[error("encoding the metrics registry failed")]
    Encode,
    /// The OpenMetrics text did not have the expected shape.
    #[error("OpenMetrics line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A metric type the 0.0.4 format cannot carry.
    #[error(
        "OpenMetrics line {line}: metric type {} has no Prometheus text form",
        crate::quote::go_quote(kind)
    )]
    UnsupportedType {
        /// 1-based line number.
        line: usize,
        /// The OpenMetrics type.
        kind: String,
    },
}

/// Renders everything in `registry` in the Prometheus text format 0.0.4.
pub fn render(registry: &Registry) -> Result<String, MetricsTextError> {
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode_registry(&mut openmetrics, registry)
        .map_err(|_| MetricsTextError::Encode)?;
    from_openmetrics(&openmetrics)
}

/// Rewrites prometheus-client's OpenMetrics text in the Prometheus text format 0.0.4.
pub fn from_openmetrics(text: &str) -> Result<String, MetricsTextError> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    // The family the following samples belong to (the name prometheus-client wrote in TYPE).
    let mut current: Option<(String, OpenMetricsType)> = None;
    let mut pending_help: Option<(String, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let malformed = |reason| MetricsTextError::Malformed { line, reason };
        if raw.is_empty() {
            continue;
        }
        if raw == "# EOF" {
            break;
        }
        if let Some(rest) = raw.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name.to_owned(), help.to_owned()));
            continue;
        }
        if let Some(rest) = raw.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or(malformed("TYPE without a type"))?;
            let kind =
                OpenMetricsType::parse(kind).ok_or_else(|| MetricsTextError::UnsupportedType {
                    line,
                    kind: kind.to_owned(),
                })?;
            let help = match pending_help.take() {
                // prometheus-client appends "." to every help text; upstream help has none.
                Some((help_name, help)) if help_name == name => {
                    Some(help.strip_suffix('.').unwrap_or(&help).to_owned())
                }
                _ => None,
            };
            let exposed = kind.exposed_name(name);
            if families.contains_key(&exposed) {
                return Err(malformed("metric family declared twice"));
            }
            families.insert(
                exposed.clone(),
                Family {
                    name: exposed,
                    help,
                    kind: kind.exposed_kind(),
                    series: BTreeMap::new(),
                },
            );
            current = Some((name.to_owned(), kind));
            continue;
        }
        if raw.starts_with('#') {
            // `# UNIT` has no 0.0.4 form; the unit is already part of the name.
            continue;
        }
        let (family_name, kind) = current.as_ref().ok_or(malformed("sample before TYPE"))?;
        let sample = Sample::parse(raw).map_err(malformed)?;
        let suffix = sample
            .name
            .strip_prefix(family_name.as_str())
            .ok_or(malformed("sample outside its family"))?
            .to_owned();
        let family = families
            .get_mut(&kind.exposed_name(family_name))
            .ok_or(malformed("sample outside its family"))?;
        family.add(*kind, &suffix, sample).map_err(malformed)?;
    }
    let mut out = String::new();
    for family in families.values() {
        family.write(&mut out);
    }
    Ok(out)
}

/// The types prometheus-client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMetricsType {
    Counter,
    Gauge,
    Histogram,
    Info,
    Unknown,
}

impl OpenMetricsType {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "info" => Self::Info,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }

    /// client_golang has no info type: an info metric is a gauge named `<name>_info`.
    fn exposed_name(self, name: &str) -> String {
        match self {
            Self::Info => format!("{name}_info"),
            _ => name.to_owned(),
        }
    }

    fn exposed_kind(self) -> ExposedType {
        match self {
            Self::Counter => ExposedType::Counter,
            Self::Gauge | Self::Info => ExposedType::Gauge,
            Self::Histogram => ExposedType::Histogram,
            Self::Unknown => ExposedType::Untyped,
        }
    }
}

/// The types of the 0.0.4 format that prometheus-client metrics map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExposedType {
    Counter,
    Gauge,
    Histogram,
    Untyped,
}

impl ExposedType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Untyped => "untyped",
        }
    }
}

type Labels = Vec<(String, String)>;

struct Family {
    name: String,
    help: Option<String>,
    kind: ExposedType,
    /// Keyed by the labels sorted by name (`le` excluded).
    series: BTreeMap<Labels, Series>,
}

#[derive(Default)]
struct Series {
    value: Option<f64>,
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

impl Family {
    fn add(
        &mut self,
        kind: OpenMetricsType,
        suffix: &str,
        sample: Sample,
    ) -> Result<(), &'static str> {
        let mut labels = sample.labels;
        let le = match labels.iter().position(|(k, _)| k == "le") {
            Some(at) if kind == OpenMetricsType::Histogram && suffix == "_bucket" => {
                Some(parse_value(&labels.remove(at).1)?)
            }
            _ => None,
        };
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let series = self.series.entry(labels).or_default();
        match (kind, suffix) {
            (OpenMetricsType::Counter, "_total")
            | (OpenMetricsType::Gauge | OpenMetricsType::Unknown, "")
            | (OpenMetricsType::Info, "_info") => set_once(&mut series.value, sample.value),
            (OpenMetricsType::Histogram, "_bucket") => {
                series
                    .buckets
                    .push((le.ok_or("bucket without le")?, sample.value));
                Ok(())
            }
            (OpenMetricsType::Histogram, "_sum") => set_once(&mut series.sum, sample.value),
            (OpenMetricsType::Histogram, "_count") => set_once(&mut series.count, sample.value),
            // Creation timestamps have no 0.0.4 form.
            (OpenMetricsType::Counter | OpenMetricsType::Histogram, "_created") => Ok(()),
            _ => Err("sample suffix does not fit its metric type"),
        }
    }

    fn write(&self, out: &mut String) {
        let mut series: Vec<(&Labels, &Series)> = self.series.iter().collect();
        if series.is_empty() {
            // client_golang's Gather drops families without a series.
            return;
        }
        series.sort_by(|a, b| compare_label_values(a.0, b.0));
        if let Some(help) = &self.help {
            out.push_str("# HELP ");
            out.push_str(&self.name);
            out.push(' ');
            escape_into(out, help, false);
            out.push('\n');
        }
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for (labels, s) in series {
            if self.kind == ExposedType::Histogram {
                let count = s.count.unwrap_or(0.0);
                let mut saw_inf = false;
                for (le, cumulative) in &s.buckets {
                    write_sample(out, &self.name, "_bucket", labels, Some(*le), *cumulative);
                    saw_inf |= *le == f64::INFINITY;
                }
                if !saw_inf {
                    write_sample(
                        out,
                        &self.name,
                        "_bucket",
                        labels,
                        Some(f64::INFINITY),
                        count,
                    );
                }
                write_sample(out, &self.name, "_sum", labels, None, s.sum.unwrap_or(0.0));
                write_sample(out, &self.name, "_count", labels, None, count);
            } else {
                write_sample(out, &self.name, "", labels, None, s.value.unwrap_or(0.0));
            }
        }
    }
}

fn set_once(slot: &mut Option<f64>, value: f64) -> Result<(), &'static str> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err("duplicate series"),
    }
}

/// client_golang's `MetricSorter`: fewer labels first, then label values in label-name order.
fn compare_label_values(a: &Labels, b: &Labels) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.1.cmp(&y.1))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &Labels,
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        let mut separator = '{';
        for (key, value) in labels {
            out.push(separator);
            out.push_str(key);
            out.push_str("=\"");
            escape_into(out, value, true);
            out.push('"');
            separator = ',';
        }
        if let Some(le) = le {
            out.push(separator);
            out.push_str("le=\"");
            out.push_str(&go_float(le));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&go_float(value));
    out.push('\n');
}

/// expfmt's `writeEscapedString`.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` as expfmt's `writeFloat` uses it: the shortest
/// digits that round-trip, exponent form when the exponent is below -4 or at least 6.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        // expfmt writes both zeros as "0".
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, as `d.ddde<exp>`.
    let scientific = format!("{:e}", v.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(exponent.unsigned_abs() - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let integer_len = usize::try_from(exponent).unwrap_or(0) + 1;
        if digits.len() <= integer_len {
            out.push_str(&digits);
            for _ in digits.len()..integer_len {
                out.push('0');
            }
        } else {
            let (integer, fraction) = digits.split_at(integer_len);
            out.push_str(integer);
            out.push('.');
            out.push_str(fraction);
        }
    }
    out
}

/// A sample line: `name{k="v",...} value` with an optional ` # {...} exemplar` tail.
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

impl Sample {
    fn parse(line: &str) -> Result<Sample, &'static str> {
        let name_end = line.find(['{', ' ']).ok_or("sample without a value")?;
        let name = &line[..name_end];
        if name.is_empty() {
            return Err("sample without a name");
        }
        let mut rest = &line[name_end..];
        let mut labels = Labels::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(inner)?;
            labels = parsed;
            rest = after;
        }
        let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let (value, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        if !(tail.is_empty() || tail.starts_with("# ")) {
            // Only an exemplar may follow; sample timestamps are not written by prometheus-client.
            return Err("unexpected text after the value");
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value: parse_value(value)?,
        })
    }
}

/// Parses `k="v",...}` and returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Labels::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = text.split_once("=\"").ok_or("label without a value")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value"),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value"),
            }
        };
        labels.push((key.to_owned(), value));
        text = &after[end + 1..];
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("labels not separated by a comma");
        }
    }
}

fn parse_value(text: &str) -> Result<f64, &'static str> {
    // Rust's parser takes prometheus-client's "inf"/"NaN" as well as "+Inf".
    text.parse().map_err(|_| "value is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family as MetricFamily;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use std::sync::atomic::AtomicU64;

    type L = Vec<(String, String)>;

    fn labels(pairs: &[(&str, &str)]) -> L {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_counter_with_labels_keeps_its_registered_name() {
        let mut registry = Registry::default();
        let syncs = MetricFamily::<L, Counter>::default();
        registry
            .sub_registry_with_prefix("endpoint_slice_controller")
            .register("syncs", "Number of EndpointSlice syncs", syncs.clone());
        syncs
            .get_or_create(&labels(&[("result", "success")]))
            .inc_by(3);
        syncs.get_or_create(&labels(&[("result", "error")])).inc();
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP endpoint_slice_controller_syncs Number of EndpointSlice syncs\n\
             # TYPE endpoint_slice_controller_syncs counter\n\
             endpoint_slice_controller_syncs{result=\"error\"} 1\n\
             endpoint_slice_controller_syncs{result=\"success\"} 3\n"
        );
    }

    #[test]
    fn a_counter_registered_with_total_is_not_doubled() {
        let mut registry = Registry::default();
        let allocations = MetricFamily::<L, Counter>::default();
        registry
            .sub_registry_with_prefix("kube_apiserver_nodeport_allocator")
            .register(
                "allocation_total",
                "Number of NodePort allocations",
                allocations.clone(),
            );
        allocations
            .get_or_create(&labels(&[("scope", "dynamic")]))
            .inc_by(1_000_000);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP kube_apiserver_nodeport_allocator_allocation_total Number of NodePort allocations\n\
             # TYPE kube_apiserver_nodeport_allocator_allocation_total counter\n\
             kube_apiserver_nodeport_allocator_allocation_total{scope=\"dynamic\"} 1e+06\n"
        );
    }

    #[test]
    fn gauges_are_written_as_go_floats() {
        let mut registry = Registry::default();
        let allocated = Gauge::<f64, AtomicU64>::default();
        let available = MetricFamily::<L, Gauge<f64, AtomicU64>>::default();
        let prefix = registry.sub_registry_with_prefix("kube_apiserver_clusterip_allocator");
        prefix.register(
            "available_ips",
            "Gauge measuring the number of available IPs for Services",
            available.clone(),
        );
        registry.register(
            "kube_apiserver_nodeport_allocator_allocated_ports",
            "Gauge measuring the number of allocated NodePorts for Services",
            allocated.clone(),
        );
        allocated.set(2766.0);
        available
            .get_or_create(&labels(&[("cidr", "10.96.0.0/12")]))
            .set(1_048_571.0);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP kube_apiserver_clusterip_allocator_available_ips Gauge measuring the number of available IPs for Services\n\
             # TYPE kube_apiserver_clusterip_allocator_available_ips gauge\n\
             kube_apiserver_clusterip_allocator_available_ips{cidr=\"10.96.0.0/12\"} 1.048571e+06\n\
             # HELP kube_apiserver_nodeport_allocator_allocated_ports Gauge measuring the number of allocated NodePorts for Services\n\
             # TYPE kube_apiserver_nodeport_allocator_allocated_ports gauge\n\
             kube_apiserver_nodeport_allocator_allocated_ports 2766\n"
        );
    }

    #[test]
    fn a_histogram_is_buckets_then_sum_then_count_with_le_last() {
        let mut registry = Registry::default();
        let changed = MetricFamily::<L, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 1.0, 2.5])
        });
        registry.register(
            "endpoint_slice_controller_endpointslices_changed_per_sync",
            "Number of EndpointSlices changed on each Service sync",
            changed.clone(),
        );
        let series = changed.get_or_create(&labels(&[
            ("traffic_distribution", ""),
            ("topology", "Disabled"),
        ]));
        series.observe(1.0);
        series.observe(2.0);
        series.observe(0.25);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP endpoint_slice_controller_endpointslices_changed_per_sync Number of EndpointSlices changed on each Service sync\n\
             # TYPE endpoint_slice_controller_endpointslices_changed_per_sync histogram\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_bucket{topology=\"Disabled\",traffic_distribution=\"\",le=\"0.005\"} 0\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_bucket{topology=\"Disabled\",traffic_distribution=\"\",le=\"1\"} 2\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_bucket{topology=\"Disabled\",traffic_distribution=\"\",le=\"2.5\"} 3\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_bucket{topology=\"Disabled\",traffic_distribution=\"\",le=\"+Inf\"} 3\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_sum{topology=\"Disabled\",traffic_distribution=\"\"} 3.25\n\
             endpoint_slice_controller_endpointslices_changed_per_sync_count{topology=\"Disabled\",traffic_distribution=\"\"} 3\n"
        );
    }

    #[test]
    fn a_histogram_without_labels_and_tiny_bounds() {
        let mut registry = Registry::default();
        let latency = Histogram::new([0.000_05, 0.0001]);
        registry.register("svcplane_latency_seconds", "Latency", latency.clone());
        latency.observe(0.000_07);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP svcplane_latency_seconds Latency\n\
             # TYPE svcplane_latency_seconds histogram\n\
             svcplane_latency_seconds_bucket{le=\"5e-05\"} 0\n\
             svcplane_latency_seconds_bucket{le=\"0.0001\"} 1\n\
             svcplane_latency_seconds_bucket{le=\"+Inf\"} 1\n\
             svcplane_latency_seconds_sum 7e-05\n\
             svcplane_latency_seconds_count 1\n"
        );
    }

    #[test]
    fn families_sort_by_name_and_empty_families_are_left_out() {
        let mut registry = Registry::default();
        let changes = MetricFamily::<L, Counter>::default();
        let desired = Gauge::<i64>::default();
        registry.register("zz_changes", "Changes", changes.clone());
        registry.register("aa_desired", "Desired", desired.clone());
        registry.register("mm_unused", "Unused", MetricFamily::<L, Counter>::default());
        changes
            .get_or_create(&labels(&[("operation", "create")]))
            .inc();
        desired.set(-1);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP aa_desired Desired\n\
             # TYPE aa_desired gauge\n\
             aa_desired -1\n\
             # HELP zz_changes Changes\n\
             # TYPE zz_changes counter\n\
             zz_changes{operation=\"create\"} 1\n"
        );
    }

    #[test]
    fn labels_sort_by_name_and_values_are_escaped_like_expfmt() {
        let mut registry = Registry::default();
        let requests = MetricFamily::<L, Counter>::default();
        registry.register(
            "svcplane_webhook_requests_total",
            "Reviews \\ answered",
            requests.clone(),
        );
        requests
            .get_or_create(&labels(&[
                ("path", "/validate"),
                ("operation", "a\"b\\c\nd"),
            ]))
            .inc();
        requests
            .get_or_create(&labels(&[
                ("path", "/mutate"),
                ("operation", "Service/CREATE"),
            ]))
            .inc_by(2);
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP svcplane_webhook_requests_total Reviews \\\\ answered\n\
             # TYPE svcplane_webhook_requests_total counter\n\
             svcplane_webhook_requests_total{operation=\"Service/CREATE\",path=\"/mutate\"} 2\n\
             svcplane_webhook_requests_total{operation=\"a\\\"b\\\\c\\nd\",path=\"/validate\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_only_parts_are_dropped() {
        let text = "# HELP requests Requests.\n\
                    # TYPE requests counter\n\
                    # UNIT requests requests\n\
                    requests_total{code=\"200\"} 7 # {trace_id=\"a b\"} 1.0 1700000000.0\n\
                    requests_created{code=\"200\"} 1700000000.0\n\
                    # HELP build Build.\n\
                    # TYPE build info\n\
                    build_info{version=\"1.0\"} 1\n\
                    # HELP temp Temp.\n\
                    # TYPE temp unknown\n\
                    temp NaN\n\
                    # EOF\n";
        assert_eq!(
            from_openmetrics(text).unwrap(),
            "# HELP build_info Build\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1.0\"} 1\n\
             # HELP requests Requests\n\
             # TYPE requests counter\n\
             requests{code=\"200\"} 7\n\
             # HELP temp Temp\n\
             # TYPE temp untyped\n\
             temp NaN\n"
        );
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert_eq!(
            from_openmetrics("x 1\n"),
            Err(MetricsTextError::Malformed {
                line: 1,
                reason: "sample before TYPE"
            })
        );
        assert_eq!(
            from_openmetrics("# TYPE x stateset\n"),
            Err(MetricsTextError::UnsupportedType {
                line: 1,
                kind: "stateset".into()
            })
        );
        assert_eq!(
            from_openmetrics("# TYPE x counter\nx 1\n"),
            Err(MetricsTextError::Malformed {
                line: 2,
                reason: "sample suffix does not fit its metric type"
            })
        );
        assert_eq!(
            from_openmetrics("# TYPE x gauge\nx{a=\"1} 1\n"),
            Err(MetricsTextError::Malformed {
                line: 2,
                reason: "unterminated label value"
            })
        );
        assert_eq!(
            from_openmetrics("# TYPE x gauge\nx{a=\"1\"} one\n"),
            Err(MetricsTextError::Malformed {
                line: 2,
                reason: "value is not a number"
            })
        );
        assert_eq!(
            from_openmetrics("# TYPE x gauge\ny 1\n"),
            Err(MetricsTextError::Malformed {
                line: 2,
                reason: "sample outside its family"
            })
        );
    }

    #[test]
    fn go_float_matches_strconv_format_float_g() {
        for (value, go) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (3.25, "3.25"),
            (2766.0, "2766"),
            (32768.0, "32768"),
            (100_000.0, "100000"),
            (999_999.0, "999999"),
            (1_000_000.0, "1e+06"),
            (1_048_571.0, "1.048571e+06"),
            (1.7e9, "1.7e+09"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.000_05, "5e-05"),
            (0.000_123_4, "0.0001234"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_float(value), go, "{value:e}");
        }
    }
}
