//! How objects are rendered for the client's Accept header: JSON, `Table` (kubectl get), or
//! `PartialObjectMetadata` (metadata-only clients).

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::resources::ResourceType;
use crate::server::ApiServer;

/// Whether the client asked for server-side printing.
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// Renders a reply body; returns the content type and the body.
pub fn render(
    _server: &ApiServer,
    _accept: &str,
    _rt: &ResourceType,
    body: Value,
    _is_list: bool,
    _query: &HashMap<String, String>,
) -> (String, Value) {
    ("application/json".to_string(), body)
}

/// Renders one object of a watch event.
pub fn render_watch_object(
    _server: &ApiServer,
    _accept: &str,
    _rt: &ResourceType,
    object: &Bytes,
) -> Bytes {
    object.clone()
}
