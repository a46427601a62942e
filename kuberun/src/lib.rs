//! How svcplane's long-running tasks watch the API and stop, after linkerd's kubert: every
//! task that follows a kind runs [`watch_events`] (or a [`store_reflector`] on top of it),
//! and every task stops when its [`Shutdown`] fires. Controllers, the allocator registry,
//! the repair controller, the `kubernetes` Service maintainer, the leader elector and the
//! webhook (its Service index and its server) all use these two, so there
//! is one way to watch and one way to stop.

#![forbid(unsafe_code)]

mod shutdown;
mod watch;

pub use shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};
pub use watch::{MAX_BATCH, store_reflector, watch_event_batches, watch_events};
