//! The testenv comparison of `scripts/bench-vs-upstream --only testenv` (issue 13, item 3):
//! the figures one run of a peer yields, and the table of both peers' runs. Plain data in,
//! plain data out; the binary `bench-testenv-vs-upstream` drives the servers.

use std::fmt::Write as _;

/// What one run of one peer measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerRun {
    /// Process spawn → `/readyz` 200, one sample per start (s).
    pub ready_seconds: Vec<f64>,
    /// Create latencies at the offered rate, from each create's scheduled start (ms).
    pub create_ms: Vec<f64>,
    /// Creates completed per second of the create phase (first scheduled start → last answer).
    pub creates_per_second: f64,
    /// Creates that failed (either loop).
    pub create_errors: usize,
    /// Create latencies in the closed loop, each client sending its next create when its last is
    /// answered (ms).
    pub closed_create_ms: Vec<f64>,
    /// Creates answered per second in the closed loop: the most the server sustains.
    pub closed_creates_per_second: f64,
    /// Latency of a LIST of every pod of the namespace, one sample per LIST (ms).
    pub list_ms: Vec<f64>,
    /// How many pods each LIST returned (the same every time).
    pub listed: usize,
    /// One pod created → every watcher has seen it, one sample per event (ms).
    pub fanout_ms: Vec<f64>,
    /// RSS of the peer's processes (testenv; or kube-apiserver + etcd) holding the objects (MiB).
    pub rss_mib: f64,
    /// The same, before any object was created (MiB).
    pub rss_idle_mib: f64,
}

/// The `p`th percentile (nearest rank) of `values`; 0 when there are none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median (mean of the middle two for an even count); 0 when there are none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// svcplane's figure ÷ upstream's, with two significant digits below 1 (at least two decimals).
pub fn ratio(testenv: f64, upstream: f64) -> String {
    if upstream <= 0.0 {
        return "—".to_string();
    }
    let r = testenv / upstream;
    let decimals = if r > 0.0 && r < 1.0 {
        (1 - r.log10().floor() as i32).max(2) as usize
    } else {
        2
    };
    format!("{r:.decimals$}")
}

/// One figure of a run.
struct Row {
    name: &'static str,
    decimals: usize,
    value: fn(&PeerRun) -> f64,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "start → /readyz 200, median of the starts (s)",
            decimals: 3,
            value: |r| median(&r.ready_seconds),
        },
        Row {
            name: "create p50 at the offered rate (ms)",
            decimals: 2,
            value: |r| percentile(&r.create_ms, 50.0),
        },
        Row {
            name: "create p99 at the offered rate (ms)",
            decimals: 2,
            value: |r| percentile(&r.create_ms, 99.0),
        },
        Row {
            name: "creates completed per second",
            decimals: 0,
            value: |r| r.creates_per_second,
        },
        Row {
            name: "creates/s in a closed loop (the most it sustains)",
            decimals: 0,
            value: |r| r.closed_creates_per_second,
        },
        Row {
            name: "create p99 in the closed loop (ms)",
            decimals: 2,
            value: |r| percentile(&r.closed_create_ms, 99.0),
        },
        Row {
            name: "LIST of every pod, median (ms)",
            decimals: 1,
            value: |r| median(&r.list_ms),
        },
        Row {
            name: "watch fan-out: one create → every watcher saw it, median (ms)",
            decimals: 2,
            value: |r| median(&r.fanout_ms),
        },
        Row {
            name: "watch fan-out p99 (ms)",
            decimals: 2,
            value: |r| percentile(&r.fanout_ms, 99.0),
        },
        Row {
            name: "RSS idle, before any object (MiB)",
            decimals: 1,
            value: |r| r.rss_idle_mib,
        },
        Row {
            name: "RSS holding the objects (MiB)",
            decimals: 1,
            value: |r| r.rss_mib,
        },
    ]
}

/// The markdown table: per figure the median over runs of each peer, testenv ÷ upstream, and
/// every run's figure.
pub fn table(upstream: &[PeerRun], testenv: &[PeerRun]) -> String {
    let mut out = format!(
        "| figure (median of {} / {} runs) | kube-apiserver + etcd | testenv | testenv ÷ upstream | runs upstream | runs testenv |\n|---|---|---|---|---|---|\n",
        upstream.len(),
        testenv.len()
    );
    for row in rows() {
        let u: Vec<f64> = upstream.iter().map(row.value).collect();
        let t: Vec<f64> = testenv.iter().map(row.value).collect();
        let f = |v: f64| format!("{v:.*}", row.decimals);
        let all = |v: &[f64]| v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.name,
            f(median(&u)),
            f(median(&t)),
            ratio(median(&t), median(&u)),
            all(&u),
            all(&t),
        );
    }
    let errors = |runs: &[PeerRun]| runs.iter().map(|r| r.create_errors).sum::<usize>();
    let listed = |runs: &[PeerRun]| {
        runs.iter()
            .map(|r| r.listed.to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let _ = writeln!(
        out,
        "\nFailed creates: upstream {}, testenv {}. Pods per LIST: upstream {}, testenv {}.",
        errors(upstream),
        errors(testenv),
        listed(upstream),
        listed(testenv)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(ratio(0.009, 4.2), "0.0021");
        assert_eq!(ratio(1.0, 4.0), "0.25");
        assert_eq!(ratio(0.9, 10.0), "0.090");
        assert_eq!(ratio(999.0, 435.0), "2.30");
        assert_eq!(ratio(1.0, 0.0), "—");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn the_table_gives_medians_ratios_and_every_run() {
        let run = |ready: f64, rss: f64| PeerRun {
            ready_seconds: vec![ready, ready + 1.0, ready + 2.0],
            create_ms: vec![1.0, 2.0, 3.0],
            creates_per_second: 1000.0,
            create_errors: 0,
            closed_create_ms: vec![4.0, 5.0],
            closed_creates_per_second: ready * 100.0,
            list_ms: vec![100.0],
            listed: 10_000,
            fanout_ms: vec![2.0],
            rss_mib: rss,
            rss_idle_mib: rss / 2.0,
        };
        let upstream = vec![run(5.0, 400.0), run(7.0, 600.0)];
        let testenv = vec![run(0.02, 100.0), run(0.04, 150.0)];
        let t = table(&upstream, &testenv);
        // medians of the starts: 6 and 8 → 7; 1.02 and 1.04 → 1.03.
        assert!(
            t.contains("| start → /readyz 200, median of the starts (s) | 7.000 | 1.030 | 0.15 | 6.000 / 8.000 | 1.020 / 1.040 |"),
            "{t}"
        );
        assert!(
            t.contains("| RSS holding the objects (MiB) | 500.0 | 125.0 | 0.25 | 400.0 / 600.0 | 100.0 / 150.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| creates/s in a closed loop (the most it sustains) | 600 | 3 | 0.0050 | 500 / 700 | 2 / 4 |"),
            "{t}"
        );
        assert!(t.contains("Pods per LIST: upstream 10000 / 10000"), "{t}");
    }
}
