//! Events: published through kube's `Recorder` off the sync path (a bounded channel feeds a
//! publishing task, so a slow or failing events API never delays a sync), and remembered in a
//! small in-memory ring for `kubectl`-less inspection and tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

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
    reference: ObjectReference,
}

/// Records events for one controller (event source `component`).
#[derive(Clone)]
pub struct EventRecorder {
    publish: Option<mpsc::Sender<Publication>>,
    recent: Arc<Mutex<VecDeque<RecordedEvent>>>,
}

impl EventRecorder {
    /// A recorder publishing through `client` as `component`; spawns the publishing task.
    pub fn new(client: kube::Client, component: &str) -> Self {
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: component.to_owned(),
                instance: None,
            },
        );
        let (sender, mut receiver) = mpsc::channel::<Publication>(PUBLISH_BACKLOG);
        tokio::spawn(async move {
            while let Some(p) = receiver.recv().await {
                if let Err(error) = recorder.publish(&p.event, &p.reference).await {
                    tracing::debug!(error = %gocompat::api_error_text(&error), reason = %p.event.reason, "cannot publish event");
                }
            }
        });
        EventRecorder {
            publish: Some(sender),
            recent: Arc::default(),
        }
    }

    /// A recorder that only remembers (for offline use and unit tests).
    pub fn in_memory() -> Self {
        EventRecorder {
            publish: None,
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
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: reason.to_owned(),
                note: Some(message),
                action: reason.to_owned(),
                secondary: None,
            };
            if sender.try_send(Publication { event, reference }).is_err() {
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

/// An ObjectReference to a Service (or any core/v1 object) for events.
pub fn reference_to<K: kube::Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    object.object_ref(&())
}
