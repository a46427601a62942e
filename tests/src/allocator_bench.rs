//! The allocator comparison of `scripts/bench-vs-upstream --only allocator` (issue 13, item 2):
//! reading the two sides' results and the table they make. Plain data in, plain data out; the
//! binary `bench-allocator-vs-upstream` runs the benchmarks.
//!
//! - upstream: `go test -bench` output of `realk8s/kube/allocatorbench`, one line per
//!   `Benchmark<Group>/<case>/<allocator>-<GOMAXPROCS>  <N>  <ns> ns/op`, where the allocator is
//!   `bitmap` (ipallocator/portallocator `NewInMemory`) or `ipaddress` (ipallocator's
//!   IPAddress-object allocator, what kube-apiserver 1.34 allocates ClusterIPs with);
//! - svcplane: criterion's `estimates.json` of `allocator/benches/vs_upstream.rs`, group
//!   `vs_upstream`, one benchmark per case (the median, in ns per iteration).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The cases both sides run, in table order, with what each one is.
pub const CASES: &[(&str, &str)] = &[
    (
        "ipv4_12_next_free_0pct",
        "next free ClusterIP, 10.96.0.0/12, empty",
    ),
    (
        "ipv4_12_next_free_50pct",
        "next free ClusterIP, /12, 50 % full",
    ),
    (
        "ipv4_12_next_free_99pct",
        "next free ClusterIP, /12, 99 % full",
    ),
    (
        "ipv4_12_allocate_random_50pct",
        "allocate a given ClusterIP, random order, /12, 50 % full",
    ),
    (
        "ipv4_12_release_50pct",
        "release a ClusterIP, /12, 50 % full",
    ),
    (
        "ipv6_112_next_free_50pct",
        "next free ClusterIP, fd00::/112, 50 % full",
    ),
    (
        "ipv6_64_next_free_1m",
        "next free ClusterIP, fd00::/64, 1,000,000 held",
    ),
    (
        "node_port_next_free_0pct",
        "next free NodePort, 30000-32767, empty",
    ),
    ("node_port_next_free_50pct", "next free NodePort, 50 % full"),
    ("node_port_next_free_99pct", "next free NodePort, 99 % full"),
];

/// Upstream's two allocators, as the Go sub-benchmarks name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upstream {
    /// `ipallocator.NewInMemory` / `portallocator.NewInMemory`.
    Bitmap,
    /// `ipallocator.NewIPAllocator` (IPAddress objects).
    IpAddress,
}

impl Upstream {
    /// The name the Go sub-benchmarks use.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Bitmap => "bitmap",
            Upstream::IpAddress => "ipaddress",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "bitmap" => Some(Upstream::Bitmap),
            "ipaddress" => Some(Upstream::IpAddress),
            _ => None,
        }
    }
}

/// ns/op by (case, upstream allocator), from one `go test -bench` run.
pub type GoResults = BTreeMap<(String, Upstream), f64>;

/// Reads `go test -bench` output: every result line of a `case/allocator` sub-benchmark.
/// Other lines (headers, PASS, the fill's log) are skipped.
pub fn parse_go_bench(output: &str) -> GoResults {
    let mut results = GoResults::new();
    for line in output.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(_iterations), Some(ns), Some("ns/op")) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(ns) = ns.parse::<f64>() else { continue };
        // Benchmark<Group>/<case>/<allocator>-<procs>; the -procs suffix is absent at GOMAXPROCS=1.
        let mut parts = name.split('/');
        let (Some(group), Some(case), Some(allocator), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !group.starts_with("Benchmark") {
            continue;
        }
        let allocator = allocator
            .rsplit_once('-')
            .filter(|(_, procs)| procs.parse::<u32>().is_ok())
            .map_or(allocator, |(name, _)| name);
        if let Some(upstream) = Upstream::from_name(allocator) {
            results.insert((case.to_string(), upstream), ns);
        }
    }
    results
}

/// The median of criterion's `estimates.json` (ns per iteration, which is per operation here:
/// each iteration is one operation).
pub fn parse_criterion_median(estimates_json: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(estimates_json).ok()?;
    value.get("median")?.get("point_estimate")?.as_f64()
}

/// Every round's figures of one side of one case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub svcplane: Vec<f64>,
    pub bitmap: Vec<f64>,
    pub ipaddress: Vec<f64>,
}

/// All rounds: case → samples.
pub type AllSamples = BTreeMap<String, Samples>;

/// Adds one round of both sides.
pub fn add_round(all: &mut AllSamples, go: &GoResults, svcplane: &BTreeMap<String, f64>) {
    for ((case, upstream), ns) in go {
        let s = all.entry(case.clone()).or_default();
        match upstream {
            Upstream::Bitmap => s.bitmap.push(*ns),
            Upstream::IpAddress => s.ipaddress.push(*ns),
        }
    }
    for (case, ns) in svcplane {
        all.entry(case.clone()).or_default().svcplane.push(*ns);
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// ns with three significant digits, in ns, µs, ms or s as fits.
pub fn format_ns(ns: f64) -> String {
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {unit}")
}

/// upstream ÷ svcplane: how many times faster svcplane is (below 1: slower).
pub fn speedup(upstream: Option<f64>, svcplane: Option<f64>) -> String {
    match (upstream, svcplane) {
        (Some(u), Some(s)) if s > 0.0 => {
            let x = u / s;
            if x >= 10_000.0 {
                format!("{x:.1e}×")
            } else if x >= 100.0 {
                format!("{x:.0}×")
            } else {
                format!("{x:.1}×")
            }
        }
        _ => "—".to_string(),
    }
}

fn cell(values: &[f64], missing: &str) -> String {
    median(values).map_or_else(|| missing.to_string(), format_ns)
}

fn runs(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format_ns(*v))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The markdown table: per case the median ns/op of svcplane and of upstream's two allocators
/// and upstream ÷ svcplane, then every round's figures. Cases a side did not run (the smoke run
/// skips the slow ones) show "not run"; the bitmap's /64 shows why it is absent.
pub fn table(all: &AllSamples) -> String {
    let mut out = String::new();
    out.push_str(
        "| case | svcplane | upstream bitmap | bitmap ÷ svcplane | upstream IPAddress allocator (1.34's default) | IPAddress ÷ svcplane |\n|---|---|---|---|---|---|\n",
    );
    let empty = Samples::default();
    for (case, what) in CASES {
        let s = all.get(*case).unwrap_or(&empty);
        let svc = median(&s.svcplane);
        let bitmap = if *case == "ipv6_64_next_free_1m" {
            "cannot (caps IPv6 at 65,536 addresses)".to_string()
        } else {
            cell(&s.bitmap, "not run")
        };
        let ipaddress = if case.starts_with("node_port") {
            "— (NodePorts stay on the bitmap)".to_string()
        } else {
            cell(&s.ipaddress, "not run")
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {bitmap} | {} | {ipaddress} | {} |",
            cell(&s.svcplane, "not run"),
            speedup(median(&s.bitmap), svc),
            speedup(median(&s.ipaddress), svc),
        );
    }
    out.push_str("\nEvery round (svcplane; bitmap; IPAddress):\n\n");
    for (case, _) in CASES {
        if let Some(s) = all.get(*case) {
            let _ = writeln!(
                out,
                "- `{case}`: {}; {}; {}",
                runs(&s.svcplane),
                runs(&s.bitmap),
                runs(&s.ipaddress)
            );
        }
    }
    out
}

/// The cases a side is missing from a round: a benchmark that failed to print, or a case renamed
/// on one side only. `short`: the Go side ran with `-test.short`, which leaves out the IPAddress
/// allocator's filled cases (it keeps the empty /12).
pub fn missing_cases(go: &GoResults, svcplane: &BTreeMap<String, f64>, short: bool) -> Vec<String> {
    let mut missing = Vec::new();
    for (case, _) in CASES {
        if !svcplane.contains_key(*case) {
            missing.push(format!("svcplane {case}"));
        }
        let upstream_allocators: &[Upstream] = if case.starts_with("node_port") {
            &[Upstream::Bitmap]
        } else if *case == "ipv6_64_next_free_1m" {
            if short { &[] } else { &[Upstream::IpAddress] }
        } else if short && *case != "ipv4_12_next_free_0pct" {
            &[Upstream::Bitmap]
        } else {
            &[Upstream::Bitmap, Upstream::IpAddress]
        };
        for u in upstream_allocators {
            if !go.contains_key(&(case.to_string(), *u)) {
                missing.push(format!("upstream {case}/{}", u.name()));
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_OUTPUT: &str = "goos: linux
goarch: amd64
pkg: svcplane.local/realk8s/kube/allocatorbench
cpu: AMD EPYC
BenchmarkClusterIP/ipv4_12_next_free_0pct/bitmap-2         \t 1901395\t       367.6 ns/op
BenchmarkClusterIP/ipv4_12_next_free_0pct/ipaddress-2      \t   10000\t     21725 ns/op
BenchmarkNodePort/node_port_next_free_99pct/bitmap         \t 1428825\t       410.2 ns/op
BenchmarkClusterIP/ipv6_112_next_free_50pct/other-2        \t       4\t  55728024 ns/op
--- FAIL: BenchmarkNodePort/node_port_next_free_50pct/bitmap-2
PASS
ok  \tsvcplane.local/realk8s/kube/allocatorbench\t31.170s
";

    #[test]
    fn go_lines_are_read_by_case_and_allocator_with_or_without_the_procs_suffix() {
        let r = parse_go_bench(GO_OUTPUT);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            r[&("ipv4_12_next_free_0pct".to_string(), Upstream::Bitmap)],
            367.6
        );
        assert_eq!(
            r[&("ipv4_12_next_free_0pct".to_string(), Upstream::IpAddress)],
            21725.0
        );
        assert_eq!(
            r[&("node_port_next_free_99pct".to_string(), Upstream::Bitmap)],
            410.2
        );
    }

    #[test]
    fn criterion_median_is_the_point_estimate() {
        let json = r#"{"mean":{"point_estimate":31.5},"median":{"confidence_interval":{},"point_estimate":29.75}}"#;
        assert_eq!(parse_criterion_median(json), Some(29.75));
        assert_eq!(parse_criterion_median("{}"), None);
        assert_eq!(parse_criterion_median("not json"), None);
    }

    #[test]
    fn speedup_is_upstream_over_svcplane() {
        assert_eq!(speedup(Some(367.6), Some(36.76)), "10.0×");
        assert_eq!(speedup(Some(21725.0), Some(40.0)), "543×");
        assert_eq!(speedup(Some(10.0), Some(20.0)), "0.5×");
        assert_eq!(speedup(Some(1_614_000_000.0), Some(20.2)), "8.0e7×");
        assert_eq!(speedup(None, Some(20.0)), "—");
        assert_eq!(speedup(Some(1.0), None), "—");
    }

    #[test]
    fn ns_are_shown_in_the_unit_that_fits() {
        assert_eq!(format_ns(29.74), "29.7 ns");
        assert_eq!(format_ns(367.6), "368 ns");
        assert_eq!(format_ns(21725.0), "21.7 µs");
        assert_eq!(format_ns(55_728_024.0), "55.7 ms");
        assert_eq!(format_ns(1_614_000_000.0), "1.61 s");
    }

    #[test]
    fn the_table_takes_medians_over_rounds_and_says_what_was_not_run() {
        let mut all = AllSamples::new();
        let mut svcplane = BTreeMap::new();
        svcplane.insert("ipv4_12_next_free_0pct".to_string(), 30.0);
        add_round(&mut all, &parse_go_bench(GO_OUTPUT), &svcplane);
        svcplane.insert("ipv4_12_next_free_0pct".to_string(), 50.0);
        let mut go = GoResults::new();
        go.insert(
            ("ipv4_12_next_free_0pct".to_string(), Upstream::Bitmap),
            432.4,
        );
        add_round(&mut all, &go, &svcplane);
        let t = table(&all);
        // median of 30 and 50 is 40; of 367.6 and 432.4 is 400: 10×.
        assert!(
            t.contains(
                "| next free ClusterIP, 10.96.0.0/12, empty | 40.0 ns | 400 ns | 10.0× | 21.7 µs | 543× |"
            ),
            "{t}"
        );
        assert!(t.contains("cannot (caps IPv6 at 65,536 addresses)"), "{t}");
        assert!(
            t.contains("| next free NodePort, 30000-32767, empty | not run | not run | — | — (NodePorts stay on the bitmap) | — |"),
            "{t}"
        );
        assert!(
            t.contains("- `ipv4_12_next_free_0pct`: 30.0 ns / 50.0 ns; 368 ns / 432 ns; 21.7 µs"),
            "{t}"
        );
    }

    #[test]
    fn missing_cases_names_each_absent_side() {
        let go = parse_go_bench(GO_OUTPUT);
        let mut svcplane = BTreeMap::new();
        for (case, _) in CASES {
            svcplane.insert(case.to_string(), 1.0);
        }
        let missing = missing_cases(&go, &svcplane, false);
        assert!(
            missing.contains(&"upstream ipv4_12_next_free_50pct/bitmap".to_string()),
            "{missing:?}"
        );
        // the /64 has no bitmap case and node ports have no IPAddress one
        assert!(
            !missing
                .iter()
                .any(|m| m.contains("ipv6_64_next_free_1m/bitmap"))
        );
        assert!(
            !missing
                .iter()
                .any(|m| m.contains("node_port_next_free_0pct/ipaddress"))
        );
        assert!(!missing.iter().any(|m| m.starts_with("svcplane")));
        assert!(
            missing.contains(&"upstream ipv4_12_next_free_50pct/ipaddress".to_string()),
            "{missing:?}"
        );
    }

    #[test]
    fn a_short_go_run_needs_the_ipaddress_allocator_only_on_the_empty_range() {
        let go = parse_go_bench(GO_OUTPUT);
        let missing = missing_cases(&go, &BTreeMap::new(), true);
        assert!(
            !missing.iter().any(|m| m.ends_with("/ipaddress")),
            "{missing:?}"
        );
        assert!(missing.contains(&"upstream ipv4_12_release_50pct/bitmap".to_string()));
        assert!(missing.contains(&"svcplane ipv6_64_next_free_1m".to_string()));
    }
}
