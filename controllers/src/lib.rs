#![forbid(unsafe_code)]

pub mod endpointslice;
