//! AdmissionReview decoding plus every handler (validate and mutate, with an allocator and a
//! Service lookup) on arbitrary bytes: nothing may panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use libfuzzer_sys::fuzz_target;
use webhook::server::{AdmissionHandler, AdmissionPolicy, InMemoryAllocator, Phase};

fn handler() -> &'static AdmissionHandler {
    static HANDLER: OnceLock<AdmissionHandler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let ranges = ServiceClusterIpRanges::parse("10.96.0.0/28", BitmapSizeLimit::Enforced)
            .unwrap_or_else(|e| panic!("fixed range: {e}"));
        let ports = PortRange::parse("30000-30010").unwrap_or_else(|e| panic!("fixed range: {e}"));
        AdmissionHandler::new(
            AdmissionPolicy::default(),
            Some(Arc::new(InMemoryAllocator::new(ranges, ports))),
            Some(Arc::new(Vec::new())),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    for phase in [Phase::Mutate, Phase::Validate] {
        let _ = futures::executor::block_on(handler().review(phase, data));
    }
});
