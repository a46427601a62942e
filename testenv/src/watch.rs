//! Watch streams: replay from a resourceVersion, live changes, selector transitions, bookmarks,
//! streaming lists, and 410 Expired as an in-stream ERROR event. Nothing is sent before the
//! change it shows is durable, as etcd only lets watchers see a revision once it is committed.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::api::{ApiRequest, object_matches_fields};
use crate::durability::Durability;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{ApiServer, Body};
use crate::status::ApiError;
use crate::store::{ChangeEvent, CollectionKey, EventType, StoredObject};

/// What a watch shows: one collection, maybe one namespace, filtered by selectors.
struct WatchFilter {
    collection: CollectionKey,
    namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, obj: &StoredObject) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == obj.namespace)
            && self.name.as_deref().is_none_or(|n| n == obj.name)
            && self.labels.matches(&obj.labels)
            && object_matches_fields(&self.fields, obj)
    }

    /// The event this watcher sees for a change, if any: transitions across the selector become
    /// ADDED or DELETED, as the apiserver's cacher reports them.
    fn translate(&self, e: &ChangeEvent) -> Option<(EventType, Arc<StoredObject>)> {
        if e.collection != self.collection {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.previous.as_ref().is_some_and(|p| self.matches(p));
        match e.event_type {
            EventType::Added => now.then(|| (EventType::Added, e.object.clone())),
            EventType::Deleted => (before || now).then(|| (EventType::Deleted, e.object.clone())),
            EventType::Modified => match (before, now) {
                (true, true) => Some((EventType::Modified, e.object.clone())),
                (false, true) => Some((EventType::Added, e.object.clone())),
                // The cacher's `convertToWatchEvent`: the previous content, at the event's
                // resourceVersion.
                (true, false) => Some((
                    EventType::Deleted,
                    e.previous
                        .as_ref()
                        .map(|p| {
                            let mut v = p.value();
                            crate::api::meta_mut(&mut v).insert(
                                "resourceVersion".into(),
                                serde_json::json!(e.object.resource_version.to_string()),
                            );
                            Arc::new(StoredObject::from_value(&v))
                        })
                        .unwrap_or_else(|| e.object.clone()),
                )),
                (false, false) => None,
            },
        }
    }
}

/// Encodes one watch event line for this request's representation.
pub(crate) fn event_line(
    server: &ApiServer,
    rt: &ResourceType,
    accept: &str,
    event_type: &str,
    object: &Bytes,
) -> Bytes {
    let object = crate::representation::render_watch_object(server, accept, rt, object);
    let mut buf = BytesMut::with_capacity(object.len() + 32);
    buf.put_slice(b"{\"type\":\"");
    buf.put_slice(event_type.as_bytes());
    buf.put_slice(b"\",\"object\":");
    buf.put_slice(&object);
    buf.put_slice(b"}\n");
    buf.freeze()
}

fn status_line(e: &ApiError) -> Bytes {
    let line = json!({"type": "ERROR", "object": e.to_status()});
    let mut v = serde_json::to_vec(&line).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark_line(rt: &ResourceType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let line = json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}});
    let mut v = serde_json::to_vec(&line).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Starts a watch: answers 200 at once and streams events until timeout, server stop or restart.
pub fn start(
    server: &Arc<ApiServer>,
    req: &ApiRequest,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let q = |k: &str| {
        req.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    };
    let filter = WatchFilter {
        collection: crate::conversion::storage_collection(&req.resource),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        labels: LabelSelector::parse(q("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        fields: FieldSelector::parse(q("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    server.check_field_selector(&req.resource, &filter.fields)?;
    let filter = WatchFilter {
        fields: crate::conversion::storage_fields(&req.resource, filter.fields),
        ..filter
    };
    let bookmarks = q("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = q("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| t.min(3600))
        .unwrap_or(1800);
    let requested_rv = q("resourceVersion");
    if send_initial && q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[crate::status::cause(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let requested_rv: Option<u64> = match requested_rv {
        None | Some("0") => None,
        Some(rv) => Some(rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: \"{rv}\": must be a non-negative integer"
            ))
        })?),
    };

    // Under the read lock: take the backlog and subscribe, so no change falls between them.
    let (backlog, initial, start_rv, receiver, expired, durability) = {
        let state = server.store.read();
        let durability = state.durability();
        let current = state.resource_version();
        let receiver = state.subscribe();
        match requested_rv {
            Some(rv) if !send_initial => match state.history_since(&filter.collection, rv) {
                Ok(events) => (events, Vec::new(), rv, receiver, None, durability),
                Err(resumable) => (
                    Vec::new(),
                    Vec::new(),
                    rv,
                    receiver,
                    Some(resumable),
                    durability,
                ),
            },
            _ => {
                // No resourceVersion (or streaming list): synthetic ADDED for the current state.
                let initial: Vec<Arc<StoredObject>> = state
                    .list(&filter.collection, filter.namespace.as_deref(), None)
                    .filter(|o| filter.matches(o))
                    .cloned()
                    .collect();
                (Vec::new(), initial, current, receiver, None, durability)
            }
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let server2 = server.clone();
    let rt = req.resource.clone();
    let table = crate::representation::wants_table(accept);
    let accept = accept.to_string();
    let mut epoch = server.watch_epoch.subscribe();
    tokio::spawn(async move {
        if let Some(resumable) = expired {
            // The watch cache's wording: the requested version, then the oldest it can serve.
            let e = ApiError::expired(format!(
                "too old resource version: {start_rv} ({resumable})"
            ));
            let _ = tx.send(status_line(&e)).await;
            return;
        }
        let mut last_rv = start_rv;
        if !initial.is_empty() || send_initial {
            // The listed state includes every change through `start_rv`.
            if durable(&durability, start_rv, &tx).await.is_err() {
                return;
            }
        }
        for obj in initial {
            if tx
                .send(event_line(&server2, &rt, &accept, "ADDED", &obj.json))
                .await
                .is_err()
            {
                return;
            }
        }
        if send_initial && tx.send(bookmark_line(&rt, start_rv, true)).await.is_err() {
            return;
        }
        for e in backlog {
            if durable(&durability, e.resource_version, &tx).await.is_err() {
                return;
            }
            if let Some((t, obj)) = filter.translate(&e)
                && tx
                    .send(event_line(&server2, &rt, &accept, t.as_str(), &obj.json))
                    .await
                    .is_err()
            {
                return;
            }
            last_rv = e.resource_version;
        }
        let _ = run_live(
            &server2,
            &rt,
            &accept,
            &filter,
            &durability,
            receiver,
            &tx,
            &mut epoch,
            bookmarks,
            timeout,
            &mut last_rv,
        )
        .await;
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    *response.status_mut() = StatusCode::OK;
    let ct = if table {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    response.headers_mut().insert(
        header::TRANSFER_ENCODING,
        header::HeaderValue::from_static("chunked"),
    );
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
async fn run_live(
    server: &ApiServer,
    rt: &ResourceType,
    accept: &str,
    filter: &WatchFilter,
    durability: &Durability,
    mut receiver: broadcast::Receiver<Arc<ChangeEvent>>,
    tx: &mpsc::Sender<Bytes>,
    epoch: &mut tokio::sync::watch::Receiver<u64>,
    bookmarks: bool,
    timeout_secs: u64,
    last_rv: &mut u64,
) -> Result<(), ()> {
    let deadline = tokio::time::sleep(Duration::from_secs(timeout_secs));
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(server.options.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(()),
            _ = epoch.changed() => return Ok(()),
            _ = tx.closed() => return Err(()),
            _ = ticker.tick(), if bookmarks => {
                // Every change up to `seen` has been broadcast; drain what is queued, then bookmark.
                let seen = server.store.read().resource_version();
                loop {
                    match receiver.try_recv() {
                        Ok(e) => forward(server, rt, accept, filter, durability, &e, tx, last_rv).await?,
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Lagged(_)) => return lagged(tx, *last_rv).await,
                        Err(broadcast::error::TryRecvError::Closed) => return Ok(()),
                    }
                }
                *last_rv = (*last_rv).max(seen);
                durable(durability, *last_rv, tx).await?;
                tx.send(bookmark_line(rt, *last_rv, false)).await.map_err(|_| ())?;
            }
            received = receiver.recv() => match received {
                Ok(e) => forward(server, rt, accept, filter, durability, &e, tx, last_rv).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => return lagged(tx, *last_rv).await,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    server: &ApiServer,
    rt: &ResourceType,
    accept: &str,
    filter: &WatchFilter,
    durability: &Durability,
    e: &ChangeEvent,
    tx: &mpsc::Sender<Bytes>,
    last_rv: &mut u64,
) -> Result<(), ()> {
    if let Some((t, obj)) = filter.translate(e) {
        durable(durability, e.resource_version, tx).await?;
        if let Some(lag) = server.faults.watch_lag(&rt.plural) {
            tokio::time::sleep(lag).await;
        }
        tx.send(event_line(server, rt, accept, t.as_str(), &obj.json))
            .await
            .map_err(|_| ())?;
    }
    *last_rv = e.resource_version;
    Ok(())
}

/// Waits until the change at `resource_version` is durable; if it never can be, ends the watch
/// with an ERROR event (the client relists, and sees the storage error).
async fn durable(
    durability: &Durability,
    resource_version: u64,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    match durability.wait(resource_version).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = tx
                .send(status_line(&ApiError::internal(e.to_string())))
                .await;
            Err(())
        }
    }
}

/// A watcher too slow for the change rate: end with 410 so it relists, as the apiserver would.
async fn lagged(tx: &mpsc::Sender<Bytes>, last_rv: u64) -> Result<(), ()> {
    let e = ApiError::expired(format!("too old resource version: {last_rv}"));
    tx.send(status_line(&e)).await.map_err(|_| ())
}
