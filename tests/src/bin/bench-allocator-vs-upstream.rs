#![forbid(unsafe_code)]
//! svcplane's ClusterIP and NodePort allocators against upstream's, side by side (issue 13,
//! item 2). Run by `scripts/bench-vs-upstream --only allocator` (and, reduced, by its
//! `--smoke`), which builds the two benchmark executables first:
//!
//! - upstream: `realk8s/kube/allocatorbench`, a Go test binary timing kube-apiserver 1.34.10's
//!   bitmap allocators and its IPAddress allocator;
//! - svcplane: `allocator/benches/vs_upstream.rs`, criterion, the same cases.
//!
//! Rounds alternate the sides (Go, Rust, Rust, Go, …); the table gives medians over rounds
//! ([`svcplane_tests::allocator_bench`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use svcplane_tests::allocator_bench::{
    AllSamples, CASES, GoResults, add_round, missing_cases, parse_criterion_median, parse_go_bench,
    table,
};
use svcplane_tests::bench_report;
use svcplane_tests::procfs::load_average;

const USAGE: &str = "usage: bench-allocator-vs-upstream --go-test PATH --rust-bench PATH \
[--smoke] [--rounds N] [--write FILE]";
const BEGIN_MARK: &str = "<!-- bench-vs-upstream:allocator:begin -->";
const END_MARK: &str = "<!-- bench-vs-upstream:allocator:end -->";

struct Options {
    go_test: PathBuf,
    rust_bench: PathBuf,
    smoke: bool,
    rounds: usize,
    write: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut go_test = None;
    let mut rust_bench = None;
    let mut smoke = false;
    let mut rounds = None;
    let mut write = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--go-test" => go_test = Some(PathBuf::from(value()?)),
            "--rust-bench" => rust_bench = Some(PathBuf::from(value()?)),
            "--smoke" => smoke = true,
            "--rounds" => {
                let v = value()?;
                rounds = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--rounds: not a positive number: {v}"))?,
                )
            }
            "--write" => write = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(Options {
        go_test: go_test.ok_or(format!("--go-test is required\n{USAGE}"))?,
        rust_bench: rust_bench.ok_or(format!("--rust-bench is required\n{USAGE}"))?,
        smoke,
        rounds: rounds.unwrap_or(if smoke { 1 } else { 2 }),
        write,
    })
}

/// One run of upstream's Go benchmarks: every case at `-test.benchtime` 1 s (0.05 s in the smoke
/// run) under `-test.short`, which leaves out the IPAddress allocator's filled ranges; then,
/// unless smoke, those at a fixed 3 operations (each of them takes about a second: the
/// allocator lists every IPAddress of its informer's cache twice per allocation and per release,
/// and Go would otherwise run ~100 of them plus as many untimed undos). Output is echoed to
/// stderr.
fn run_go(options: &Options) -> anyhow::Result<GoResults> {
    let short_benchtime = if options.smoke { "0.05s" } else { "1s" };
    let mut results = go_bench(
        options,
        &[
            "-test.bench",
            ".",
            "-test.benchtime",
            short_benchtime,
            "-test.short",
        ],
    )?;
    if !options.smoke {
        for (key, ns) in go_bench(
            options,
            &["-test.bench", "//ipaddress", "-test.benchtime", "3x"],
        )? {
            results.entry(key).or_insert(ns);
        }
    }
    Ok(results)
}

fn go_bench(options: &Options, args: &[&str]) -> anyhow::Result<GoResults> {
    let output = Command::new(&options.go_test)
        .args(["-test.run", "^$"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", options.go_test.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprint!("{stdout}");
    if !output.status.success() {
        anyhow::bail!("upstream's benchmarks failed ({})", output.status);
    }
    Ok(parse_go_bench(&stdout))
}

/// One run of svcplane's criterion benchmarks, into a fresh criterion directory; criterion's
/// report goes to stderr.
fn run_rust(options: &Options, criterion_home: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let _ = std::fs::remove_dir_all(criterion_home);
    let (warm_up, measurement, samples) = if options.smoke {
        ("0.05", "0.2", "10")
    } else {
        ("1", "3", "100")
    };
    let status = Command::new(&options.rust_bench)
        .args([
            "--bench",
            "--noplot",
            "--warm-up-time",
            warm_up,
            "--measurement-time",
            measurement,
            "--sample-size",
            samples,
        ])
        .env("CRITERION_HOME", criterion_home)
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", options.rust_bench.display()))?;
    if !status.success() {
        anyhow::bail!("svcplane's benchmarks failed ({status})");
    }
    let mut results = BTreeMap::new();
    for (case, _) in CASES {
        let path = criterion_home
            .join("vs_upstream")
            .join(case)
            .join("new/estimates.json");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(ns) = parse_criterion_median(&text)
        {
            results.insert(case.to_string(), ns);
        }
    }
    Ok(results)
}

fn run(options: &Options) -> anyhow::Result<()> {
    let start = bench_report::now_utc();
    let mut loads = vec![load_average()];
    let criterion_home = std::env::temp_dir().join(format!(
        "bench-allocator-vs-upstream-{}",
        std::process::id()
    ));
    let mut all = AllSamples::new();
    for round in 0..options.rounds {
        // Go first on even rounds, Rust first on odd ones: drift in the machine's load hits both.
        let (go, rust) = if round % 2 == 0 {
            let go = run_go(options)?;
            loads.push(load_average());
            let rust = run_rust(options, &criterion_home)?;
            loads.push(load_average());
            (go, rust)
        } else {
            let rust = run_rust(options, &criterion_home)?;
            loads.push(load_average());
            let go = run_go(options)?;
            loads.push(load_average());
            (go, rust)
        };
        let missing = missing_cases(&go, &rust, options.smoke);
        if !missing.is_empty() {
            let _ = std::fs::remove_dir_all(&criterion_home);
            anyhow::bail!("round {}: no figure for {}", round + 1, missing.join(", "));
        }
        add_round(&mut all, &go, &rust);
    }
    let _ = std::fs::remove_dir_all(&criterion_home);
    let header = format!(
        "### Allocators{}\n\n{start} – {}; {} round(s), alternating upstream and svcplane; load average (1/5/15 min) at the start and after each side: {}. \
upstream: `go test -bench` of `realk8s/kube/allocatorbench` (k8s.io/kubernetes v1.34.10, {}), benchtime {}{}; \
svcplane: `allocator/benches/vs_upstream.rs` (criterion median, warm-up {}, measurement {}). ns per operation; × = upstream ÷ svcplane.\n\n",
        if options.smoke { " — smoke" } else { "" },
        bench_report::now_utc(),
        options.rounds,
        loads.join("; "),
        go_version(),
        if options.smoke { "0.05 s" } else { "1 s" },
        if options.smoke {
            ", without the IPAddress allocator's filled ranges"
        } else {
            " (the IPAddress allocator's filled ranges: 3 operations, as each takes about a second)"
        },
        if options.smoke { "0.05 s" } else { "1 s" },
        if options.smoke {
            "0.2 s, 10 samples"
        } else {
            "3 s"
        },
    );
    let text = format!("{header}{}", table(&all));
    println!("{text}");
    if let Some(path) = &options.write {
        bench_report::write_section(path, BEGIN_MARK, END_MARK, &text)?;
        eprintln!("bench-allocator-vs-upstream: wrote {}", path.display());
    }
    Ok(())
}

fn go_version() -> String {
    Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Go version unknown".to_string())
}

fn main() -> std::process::ExitCode {
    bench_report::bench_main(
        "bench-allocator-vs-upstream",
        parse_options,
        |options| async move { run(&options) },
    )
}
