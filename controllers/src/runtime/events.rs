//! Events: published as kube-controller-manager's controllers publish theirs, core/v1 Events
//! through client-go's correlation ([`super::core_events`]), off the sync path (a bounded
//! channel feeds a publishing task, so a slow or failing events API never delays a sync), and
//! remembered in a small in-memory ring for `kubectl`-less inspection and tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use super::core_events::{Correlator, EventWrite, make_event};

/// How many events the in-memory ring keeps.
const RECENT_EVENTS: usize = 256;
/// How many events may wait for publication before new ones are dropped.
const PUBLISH_BACKLOG: usize = 1024;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// Upstream reason, e.g. `FailedToUpdateEndpointSlices`.
    pub reason: String,
    /// Upstream message.
    pub message: String,
    /// `namespace/name` of the object the event is about.
    pub object: String,
}

struct Publication {
    event: Event,
}

/// Records events for one controller (event source `component`).
#[derive(Clone)]
pub struct EventRecorder {
    publish: Option<mpsc::Sender<Publication>>,
    component: String,
    recent: Arc<Mutex<VecDeque<RecordedEvent>>>,
}

impl EventRecorder {
    /// A recorder publishing through `client` as `component` (the event source, as
    /// `record.NewBroadcaster(...).NewRecorder(scheme, EventSource{Component})` names it);
    /// spawns the publishing task.
    pub fn new(client: kube::Client, component: &str) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Publication>(PUBLISH_BACKLOG);
        tokio::spawn(async move {
            let mut correlator = Correlator::default();
            while let Some(p) = receiver.recv().await {
                let now = jiff::Timestamp::now();
                let Some(write) = correlator.correlate(p.event, now) else {
                    continue;
                };
                match publish(&client, write).await {
                    Ok(stored) => correlator.stored(&stored),
                    Err(error) => {
                        tracing::debug!(error = %gocompat::api_error_text(&error), "cannot publish event")
                    }
                }
            }
        });
        EventRecorder {
            publish: Some(sender),
            component: component.to_owned(),
            recent: Arc::default(),
        }
    }

    /// A recorder that only remembers (for offline use and unit tests).
    pub fn in_memory() -> Self {
        EventRecorder {
            publish: None,
            component: String::new(),
            recent: Arc::default(),
        }
    }

    /// Records an event about `reference`.
    pub fn record(&self, reference: ObjectReference, warning: bool, reason: &str, message: String) {
        let object = format!(
            "{}/{}",
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default()
        );
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(RecordedEvent {
                type_: if warning { "Warning" } else { "Normal" },
                reason: reason.to_owned(),
                message: message.clone(),
                object,
            });
        }
        if let Some(sender) = &self.publish {
            let event = make_event(
                reference,
                warning,
                reason,
                message,
                &self.component,
                jiff::Timestamp::now(),
            );
            if sender.try_send(Publication { event }).is_err() {
                tracing::debug!(reason, "event backlog full; event dropped");
            }
        }
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<RecordedEvent> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Writes one correlated event: a create, or a patch of the first one of its kind (created
/// afresh when that one is gone, as client-go's `recordEvent` does).
async fn publish(client: &kube::Client, write: EventWrite) -> Result<Event, kube::Error> {
    match write {
        EventWrite::Create(event) => {
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            Api::<Event>::namespaced(client.clone(), &namespace)
                .create(&PostParams::default(), &event)
                .await
        }
        EventWrite::Patch {
            event,
            namespace,
            name,
            patch,
        } => {
            let api = Api::<Event>::namespaced(client.clone(), &namespace);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    let mut event = *event;
                    event.metadata.resource_version = None;
                    api.create(&PostParams::default(), &event).await
                }
                result => result,
            }
        }
    }
}

/// An ObjectReference to a Service (or any core/v1 object) for events.
pub fn reference_to<K: kube::Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    object.object_ref(&())
}
