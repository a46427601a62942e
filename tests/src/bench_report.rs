//! What every side-by-side benchmark binary does around its measurements: stamp the time, splice
//! its table into `docs/performance.md` between its own markers, and turn its outcome into an
//! exit code (2 for bad flags, 1 for a failed run).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

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
