#![forbid(unsafe_code)]
//! Shared helpers for the envtest-style integration tests.
