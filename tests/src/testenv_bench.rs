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

use crate::figures::{Figure, Peers, side_by_side};
pub use crate::figures::{median, percentile};

fn figures() -> Vec<Figure<PeerRun>> {
    vec![
        Figure {
            name: "start → /readyz 200, median of the starts (s)",
            decimals: 3,
            value: |r| median(&r.ready_seconds),
        },
        Figure {
            name: "create p50 at the offered rate (ms)",
            decimals: 2,
            value: |r| percentile(&r.create_ms, 50.0),
        },
        Figure {
            name: "create p99 at the offered rate (ms)",
            decimals: 2,
            value: |r| percentile(&r.create_ms, 99.0),
        },
        Figure {
            name: "creates completed per second",
            decimals: 0,
            value: |r| r.creates_per_second,
        },
        Figure {
            name: "creates/s in a closed loop (the most it sustains)",
            decimals: 0,
            value: |r| r.closed_creates_per_second,
        },
        Figure {
            name: "create p99 in the closed loop (ms)",
            decimals: 2,
            value: |r| percentile(&r.closed_create_ms, 99.0),
        },
        Figure {
            name: "LIST of every pod, median (ms)",
            decimals: 1,
            value: |r| median(&r.list_ms),
        },
        Figure {
            name: "watch fan-out: one create → every watcher saw it, median (ms)",
            decimals: 2,
            value: |r| median(&r.fanout_ms),
        },
        Figure {
            name: "watch fan-out p99 (ms)",
            decimals: 2,
            value: |r| percentile(&r.fanout_ms, 99.0),
        },
        Figure {
            name: "RSS idle, before any object (MiB)",
            decimals: 1,
            value: |r| r.rss_idle_mib,
        },
        Figure {
            name: "RSS holding the objects (MiB)",
            decimals: 1,
            value: |r| r.rss_mib,
        },
    ]
}

/// The markdown table: per figure the median over runs of each peer, testenv ÷ upstream, and
/// every run's figure.
pub fn table(upstream: &[PeerRun], testenv: &[PeerRun]) -> String {
    let peers = Peers {
        upstream: "kube-apiserver + etcd",
        ours: "testenv",
        ours_short: "testenv",
    };
    let mut out = side_by_side(&figures(), &peers, upstream, testenv);
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
