#!/usr/bin/env bash
# Bounded fuzzing of AdmissionReview decoding + validation/mutation (for CI).
# Usage: webhook/fuzz/run.sh [SECONDS]   (default 60)
# cargo fuzz needs nightly-only flags (-Zsanitizer); on the stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. Without cargo-fuzz the proptest fallback in webhook/tests/server_never_panics.rs
# covers the same property in the normal test suite.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed (cargo install cargo-fuzz); run: cargo test -p webhook --test server_never_panics" >&2
  exit 3
fi
# New inputs go to the ignored work corpus; the committed seeds stay as they are.
mkdir -p work-corpus/admission_review artifacts/admission_review
RUSTC_BOOTSTRAP=1 cargo fuzz run admission_review work-corpus/admission_review corpus/admission_review -- \
  -max_total_time="$seconds" -max_len=65536 -timeout=10
