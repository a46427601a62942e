//! The arithmetic and the table every side-by-side benchmark reports with: medians, nearest-rank
//! percentiles, ratios, and a markdown table of each figure's median per peer, their ratio and
//! every run's value.

use std::fmt::Write as _;

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
pub fn ratio(ours: f64, upstream: f64) -> String {
    if upstream <= 0.0 {
        return "—".to_string();
    }
    let r = ours / upstream;
    let decimals = if r > 0.0 && r < 1.0 {
        (1 - r.log10().floor() as i32).max(2) as usize
    } else {
        2
    };
    format!("{r:.decimals$}")
}

/// One figure of a run of type `R`: its name, how many decimals it is shown with, and how it is
/// read from a run.
pub struct Figure<R> {
    pub name: &'static str,
    pub decimals: usize,
    pub value: fn(&R) -> f64,
}

/// How the peers' columns are headed: the upstream peer's name, ours, and ours in the ratio's and
/// the runs' headings ("svcplane up" and "svcplane ÷ upstream", say).
pub struct Peers<'a> {
    pub upstream: &'a str,
    pub ours: &'a str,
    pub ours_short: &'a str,
}

/// The markdown table of `figures`: per figure the median over runs of each peer, ours ÷
/// upstream, and every run's figure.
pub fn side_by_side<R>(
    figures: &[Figure<R>],
    peers: &Peers<'_>,
    upstream: &[R],
    ours: &[R],
) -> String {
    let Peers {
        upstream: upstream_name,
        ours: ours_name,
        ours_short,
    } = peers;
    let mut out = format!(
        "| figure (median of {} / {} runs) | {upstream_name} | {ours_name} | {ours_short} ÷ upstream | runs upstream | runs {ours_short} |\n|---|---|---|---|---|---|\n",
        upstream.len(),
        ours.len()
    );
    for figure in figures {
        let u: Vec<f64> = upstream.iter().map(figure.value).collect();
        let o: Vec<f64> = ours.iter().map(figure.value).collect();
        let f = |v: f64| format!("{v:.*}", figure.decimals);
        let all = |v: &[f64]| v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            figure.name,
            f(median(&u)),
            f(median(&o)),
            ratio(median(&o), median(&u)),
            all(&u),
            all(&o),
        );
    }
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
    fn the_table_heads_its_columns_with_the_peers_names() {
        let figures = [Figure {
            name: "creates/s",
            decimals: 0,
            value: |r: &f64| *r,
        }];
        let peers = Peers {
            upstream: "kube-apiserver + etcd",
            ours: "svcplane up",
            ours_short: "svcplane",
        };
        let t = side_by_side(&figures, &peers, &[100.0, 300.0], &[900.0]);
        assert_eq!(
            t,
            "| figure (median of 2 / 1 runs) | kube-apiserver + etcd | svcplane up | svcplane ÷ upstream | runs upstream | runs svcplane |\n|---|---|---|---|---|---|\n\
             | creates/s | 200 | 900 | 4.50 | 100 / 300 | 900 |\n"
        );
    }
}
