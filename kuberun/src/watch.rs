//! The one watch loop: kube-runtime's `watcher` (list, then watch, re-list with backoff after
//! an error or a 410 Gone), with errors logged in client-go's words and an end at shutdown.

use std::fmt::Debug;
use std::future::Future;

use futures::{FutureExt, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

use crate::Shutdown;

/// Watches the `K`s that `api` and `config` select and hands every event to `on_event`, until
/// `shutdown`. Errors never end the loop: they are logged and the watcher re-lists after a
/// backoff, so a vanished apiserver or an expired resourceVersion costs a relist, not the task.
pub async fn watch_events<K>(
    api: Api<K>,
    config: watcher::Config,
    shutdown: Shutdown,
    mut on_event: impl FnMut(Event<K>) + Send,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    watch_event_batches(api, config, shutdown, move |batch| {
        batch.into_iter().for_each(&mut on_event);
    })
    .await;
}

/// Most events handed over in one batch by [`watch_event_batches`] (a relist of many objects
/// arrives all at once; its batches end now and then so that whoever waits on them is not held
/// for the whole list).
pub const MAX_BATCH: usize = 512;

/// [`watch_events`], handing over at once every event that has already arrived: the first one
/// awaited, then each further one the stream has ready without waiting, up to [`MAX_BATCH`].
/// Back-to-back events (a pod's deletionTimestamp and its deletion, sent together by a grace-0
/// delete) thus reach a cache together, before a worker can read the state in between, as a
/// client-go informer's store runs ahead of its handlers.
pub async fn watch_event_batches<K>(
    api: Api<K>,
    config: watcher::Config,
    shutdown: Shutdown,
    mut on_batch: impl FnMut(Vec<Event<K>>) + Send,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let events = watcher::watcher(api, config).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut stop = std::pin::pin!(shutdown.wait());
    let log = |error: &watcher::Error| {
        tracing::warn!(%kind, error = %gocompat::watcher_error_text(error), "watch failed; retrying");
    };
    loop {
        let first = tokio::select! {
            () = &mut stop => return,
            event = events.next() => event,
        };
        let mut batch = match first {
            Some(Ok(event)) => vec![event],
            Some(Err(error)) => {
                log(&error);
                continue;
            }
            // A watcher stream with backoff does not end; if it ever did, nothing more comes.
            None => return,
        };
        while batch.len() < MAX_BATCH {
            match events.next().now_or_never() {
                Some(Some(Ok(event))) => batch.push(event),
                Some(Some(Err(error))) => {
                    log(&error);
                    break;
                }
                Some(None) | None => break,
            }
        }
        on_batch(batch);
    }
}

/// A kube-runtime [`Store`] kept by [`watch_events`], for tasks that read whole objects, and
/// the future that keeps it (spawn it). `also` sees every event after the store took it.
pub fn store_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    shutdown: Shutdown,
    mut also: impl FnMut(&Event<K>) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, mut writer) = reflector::store::<K>();
    let keep = watch_events(api, config, shutdown, move |event| {
        writer.apply_watcher_event(&event);
        also(&event);
    });
    (store, keep)
}
