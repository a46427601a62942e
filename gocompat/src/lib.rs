#![forbid(unsafe_code)]
//! One home for compatibility with Go's and the Kubernetes Go libraries' output: what a user
//! reads must look as upstream's would, and never like Rust's `Debug`.

pub mod base64;
pub mod errors;
pub mod hash_order;
pub mod ip;
pub mod json;
pub mod metrics_text;
pub mod quote;

pub use errors::{api_error_text, error_chain_text, watcher_error_text};
