//! What every side-by-side benchmark binary does around its measurements: stamp the time, splice
//! its table into `docs/performance.md` between its own markers, and turn its outcome into an
//! exit code (2 for bad flags, 1 for a failed run).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// A benchmark binary's command line, taken a flag at a time, each value checked as it is taken.
/// Its errors end with the usage line; `--smoke` is skipped here, since it is read up front to
/// pick the other flags' defaults (see [`Flags::smoke`]).
pub struct Flags {
    args: std::vec::IntoIter<String>,
    usage: &'static str,
}

impl Flags {
    /// The process's arguments.
    pub fn from_env(usage: &'static str) -> Self {
        Self::new(std::env::args().skip(1).collect(), usage)
    }

    pub fn new(args: Vec<String>, usage: &'static str) -> Self {
        Flags {
            args: args.into_iter(),
            usage,
        }
    }

    /// Whether `--smoke` is among the flags left.
    pub fn smoke(&self) -> bool {
        self.args.as_slice().iter().any(|a| a == "--smoke")
    }

    /// The next flag other than `--smoke`.
    pub fn next_flag(&mut self) -> Option<String> {
        self.args.by_ref().find(|a| a != "--smoke")
    }

    /// The value of `flag`, the next argument.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", self.usage))
    }

    /// The value of `flag` as a positive whole number.
    pub fn count(&mut self, flag: &str) -> Result<usize, String> {
        let v = self.value(flag)?;
        v.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(format!("{flag}: not a positive number: {v}"))
    }

    /// The error for a flag nobody knows (or `--help`, which is answered with the usage).
    pub fn unknown(&self, flag: &str) -> String {
        match flag {
            "-h" | "--help" => self.usage.to_string(),
            other => format!("unknown option {other}\n{}", self.usage),
        }
    }
}

/// The order of two peers in round `round`, ABBA: `first` leads the even rounds and `second` the
/// odd ones, so that drift in the machine's load hits both alike.
pub fn abba_order<P>(round: usize, first: P, second: P) -> [P; 2] {
    if round.is_multiple_of(2) {
        [first, second]
    } else {
        [second, first]
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `existing` with `section` between `begin` and `end`, replacing what was there, or appended
/// (with its markers) when the markers are missing or out of order.
pub fn splice_section(existing: &str, begin: &str, end: &str, section: &str) -> String {
    let block = format!("{begin}\n{section}{end}");
    match (existing.find(begin), existing.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &existing[..b], &existing[e + end.len()..])
        }
        _ => format!("{existing}\n{block}\n"),
    }
}

/// Rewrites the section between `begin` and `end` of the file at `path` (created if missing).
pub fn write_section(path: &Path, begin: &str, end: &str, section: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice_section(&existing, begin, end, section))?;
    Ok(())
}

/// The current time as the tables print it (`2026-12-02 20:24 UTC`).
pub fn now_utc() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// A benchmark binary's `main`: parses its flags (an error is printed and exits 2), runs it on a
/// multi-threaded runtime and prints a failure as `NAME: error: ...` (exit 1).
pub fn bench_main<O, F>(
    name: &str,
    parse: impl FnOnce() -> Result<O, String>,
    run: impl FnOnce(O) -> F,
) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::new(
            args.iter().map(|a| a.to_string()).collect(),
            "usage: bench [--rounds N]",
        )
    }

    #[test]
    fn peers_alternate_abba() {
        let order: Vec<[char; 2]> = (0..4).map(|r| abba_order(r, 'a', 'b')).collect();
        assert_eq!(order, [['a', 'b'], ['b', 'a'], ['a', 'b'], ['b', 'a']]);
    }

    #[test]
    fn flags_are_taken_with_their_values_and_smoke_is_skipped() {
        let mut f = flags(&["--smoke", "--rounds", "3", "--write", "out.md"]);
        assert!(f.smoke());
        assert_eq!(f.next_flag().as_deref(), Some("--rounds"));
        assert_eq!(f.count("--rounds"), Ok(3));
        assert_eq!(f.next_flag().as_deref(), Some("--write"));
        assert_eq!(f.value("--write").as_deref(), Ok("out.md"));
        assert_eq!(f.next_flag(), None);
    }

    #[test]
    fn a_missing_or_bad_value_and_an_unknown_flag_say_so_with_the_usage() {
        assert_eq!(
            flags(&[]).value("--rounds"),
            Err("--rounds needs a value\nusage: bench [--rounds N]".into())
        );
        assert_eq!(
            flags(&["0"]).count("--rounds"),
            Err("--rounds: not a positive number: 0".into())
        );
        assert_eq!(
            flags(&["x"]).count("--rounds"),
            Err("--rounds: not a positive number: x".into())
        );
        let f = flags(&[]);
        assert_eq!(f.unknown("--help"), "usage: bench [--rounds N]");
        assert_eq!(
            f.unknown("--bogus"),
            "unknown option --bogus\nusage: bench [--rounds N]"
        );
    }

    #[test]
    fn a_section_is_replaced_between_its_markers_or_appended() {
        let doc = "intro\n<!-- b -->\nold\n<!-- e -->\nafter\n";
        assert_eq!(
            splice_section(doc, "<!-- b -->", "<!-- e -->", "new\n"),
            "intro\n<!-- b -->\nnew\n<!-- e -->\nafter\n"
        );
        assert_eq!(
            splice_section("intro\n", "<!-- b -->", "<!-- e -->", "new\n"),
            "intro\n\n<!-- b -->\nnew\n<!-- e -->\n"
        );
        assert_eq!(
            splice_section("<!-- e --> <!-- b -->", "<!-- b -->", "<!-- e -->", "x\n"),
            "<!-- e --> <!-- b -->\n<!-- b -->\nx\n<!-- e -->\n"
        );
    }
}
