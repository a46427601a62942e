//! The seed of a generated corpus, shared by the differentials (issue 12, item 4: "generated
//! cases use a fresh seed per run; a failure prints the seed").
//!
//! `SVCPLANE_FIDELITY_SEED` picks it: unset or `fresh` draws a new seed, so every run, CI's
//! included, meets cases nobody tuned to; a number replays that run. The caller prints the seed
//! before its first case, so a failure always names what replays it.

/// The environment variable that fixes the seed.
pub const SEED_ENV: &str = "SVCPLANE_FIDELITY_SEED";

/// The seed `value` (the variable's contents, if set) asks for; `fresh` supplies a new one.
pub fn seed_from(value: Option<&str>, fresh: impl FnOnce() -> u64) -> Result<u64, String> {
    match value.map(str::trim) {
        None | Some("" | "fresh") => Ok(fresh()),
        Some(number) => number.parse().map_err(|_| {
            format!("{SEED_ENV} must be a number (a seed to replay) or \"fresh\", not {number:?}")
        }),
    }
}

/// This run's seed, from [`SEED_ENV`]. A value that is neither a number nor `fresh` is a
/// mistake of whoever set it, and stops the test with the reason.
pub fn run_seed() -> u64 {
    let value = std::env::var(SEED_ENV).ok();
    seed_from(value.as_deref(), fresh_seed).unwrap_or_else(|message| panic!("{message}"))
}

/// A seed no earlier run is likely to have had: the clock's nanoseconds mixed with the pid.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Whether the flag variable `name` is set to something other than empty or `0`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_empty_and_fresh_draw_a_new_seed() {
        for value in [None, Some(""), Some("fresh"), Some(" fresh ")] {
            assert_eq!(seed_from(value, || 42), Ok(42), "{value:?}");
        }
    }

    #[test]
    fn a_number_replays_and_anything_else_is_named() {
        assert_eq!(
            seed_from(Some("1796255985341140126"), || 0),
            Ok(1_796_255_985_341_140_126)
        );
        assert_eq!(
            seed_from(Some("seven"), || 0),
            Err(
                "SVCPLANE_FIDELITY_SEED must be a number (a seed to replay) or \"fresh\", not \"seven\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn fresh_seeds_differ_between_draws() {
        let first = fresh_seed();
        std::thread::sleep(std::time::Duration::from_micros(10));
        assert_ne!(first, fresh_seed());
    }
}
