//! OpenAPI documents as kubectl downloads them: `/openapi/v3` (an index of group-versions) and
//! `/openapi/v3/{api/v1 | apis/group/version | ...}` (paths and component schemas), so that
//! `kubectl explain` shows what kube-apiserver shows (enums, defaults, list types) and
//! `kubectl apply` finds the strategic-merge metadata it needs; `/openapi/v2` (JSON) likewise.
//!
//! The built-in group-versions, and `/openapi/v2` in JSON and in the gnostic protobuf form
//! client-go fetches, are served from kube-apiserver 1.34's own documents (`data/`), pruned to
//! the paths testenv serves and the schemas those reach ([`prune_upstream`],
//! [`prune_upstream_v2_protobuf`]). `testenv_serves_kube_apiservers_openapi_documents` (in
//! `tests/tests/api_fidelity.rs`) fetches them from the real kube-apiserver, checks the stored
//! copy against them and rewrites it on request. The documents of custom resources'
//! group-versions are built here from their CRDs, with the built-in schemas of k8s-openapi's
//! `schemars` impls ([`crate::schemas`]).
//!
//! Not served: custom resources in `/openapi/v2` (kube-apiserver merges their schemas in).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::OnceLock;

use http::Response;
use serde_json::{Map, Value, json};

use crate::protobuf::wire::{FieldReader, WireValue};
use crate::resources::{ResourceTable, ResourceType};
use crate::router::Route;
use crate::schemas::builtin_schemas;
use crate::server::{ApiServer, Body, error_response, json_response};
use crate::status::ApiError;
use crate::store::CollectionKey;

/// Where OpenAPI v3 documents keep their schemas (`$ref`s point there).
const V3_SCHEMAS: &str = "#/components/schemas/";
/// Where Swagger 2.0 documents keep theirs.
const V2_DEFINITIONS: &str = "#/definitions/";

/// The schema names `v` refers to (`$ref`s under `prefix`).
fn collect_refs(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x.as_str().and_then(|r| r.strip_prefix(prefix))
                {
                    out.push(r.to_string());
                } else {
                    collect_refs(x, prefix, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, prefix, out)),
        _ => {}
    }
}

/// The names reachable from `roots` through `$ref`s under `prefix`, roots included.
fn reachable(components: &Map<String, Value>, roots: &[String], prefix: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.to_vec();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = components.get(&name) {
            let mut refs = Vec::new();
            collect_refs(s, prefix, &mut refs);
            stack.extend(refs.into_iter().filter(|r| !seen.contains(r)));
        }
    }
    seen
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn json_content(schema_ref: &str) -> Value {
    let s = json!({"$ref": format!("#/components/schemas/{schema_ref}")});
    json!({"application/json": {"schema": s}, "application/yaml": {"schema": s}})
}

fn operation(rt: &ResourceType, action: &str, verb: &str, schema: &str, suffix: &str) -> Value {
    let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut params = vec![query_param(
        "pretty",
        "If 'true', then the output is pretty printed.",
    )];
    let writes = matches!(action, "post" | "put" | "patch");
    if writes {
        params.push(query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ));
        params.push(query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."));
    }
    if action == "patch" {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    let mut op = json!({
        "description": format!("{verb} the specified {}", rt.kind),
        "operationId": format!("{verb}{}{}", rt.kind, suffix),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": json_content(schema)}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    match action {
        "post" | "put" => {
            op["requestBody"] = json!({"content": json_content(schema), "required": true});
        }
        "patch" => {
            let patch = json!({"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}});
            let mut content = Map::new();
            content.insert("application/apply-patch+yaml".into(), patch.clone());
            content.insert("application/json-patch+json".into(), patch.clone());
            content.insert("application/merge-patch+json".into(), patch.clone());
            if builtin_resource(rt) {
                content.insert("application/strategic-merge-patch+json".into(), patch);
            }
            op["requestBody"] = json!({"content": content, "required": true});
        }
        _ => {}
    }
    op
}

fn builtin_resource(rt: &ResourceType) -> bool {
    ResourceTable::builtin()
        .get(&rt.group, &rt.version, &rt.plural)
        .is_some()
}

/// The paths of one resource type.
fn resource_paths(rt: &ResourceType, schema: &str, paths: &mut Map<String, Value>) {
    let base = rt.group_version_path();
    let (collection, suffix) = if rt.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", rt.plural),
            "Namespaced",
        )
    } else {
        (format!("{base}/{}", rt.plural), "")
    };
    let item = format!("{collection}/{{name}}");
    let list_schema = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(rt, "list", "list", list_schema, suffix),
            "post": operation(rt, "post", "create", schema, suffix),
            "delete": operation(rt, "deletecollection", "deletecollection", list_schema, suffix),
        }),
    );
    paths.insert(
        item,
        json!({
            "get": operation(rt, "get", "read", schema, suffix),
            "put": operation(rt, "put", "replace", schema, suffix),
            "patch": operation(rt, "patch", "patch", schema, suffix),
            "delete": operation(rt, "delete", "delete", list_schema, suffix),
        }),
    );
    // Only the read-write subresources: the Binding, exec and log schemas are not in the document.
    for sub in rt
        .subresources
        .iter()
        .filter(|s| ResourceType::subresource_verbs(s).contains(&"update"))
    {
        let s = format!("{suffix}{}", capitalize(sub));
        paths.insert(
            format!("{collection}/{{name}}/{sub}"),
            json!({
                "get": operation(rt, "get", "read", schema, &s),
                "put": operation(rt, "put", "replace", schema, &s),
                "patch": operation(rt, "patch", "patch", schema, &s),
            }),
        );
    }
    if rt.namespaced {
        paths.insert(
            format!("{base}/{}", rt.plural),
            json!({"get": operation(rt, "list", "list", list_schema, "ForAllNamespaces")}),
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The schema of a custom resource from its CRD version, with the GVK extension and ObjectMeta.
fn custom_resource_schema(crd: &Value, rt: &ResourceType) -> Value {
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some(&rt.version)));
    let mut schema = version
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Value::Object(m) = &mut schema {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(p) = props {
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}),
            );
            p.entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            p.entry("kind").or_insert_with(|| json!({"type": "string"}));
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    schema
}

/// The OpenAPI v3 document of one group/version, or `None` if nothing is served there.
pub fn group_version_document(server: &ApiServer, group: &str, version: &str) -> Option<Value> {
    let table = server.resources();
    let builtins = builtin_schemas();
    let types: Vec<_> = crate::resources::resources_of(&table, group, version)
        .cloned()
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
    ];
    let mut custom: Vec<(String, Value)> = Vec::new();
    for rt in &types {
        let schema = match builtins.schema_name(&rt.group, &rt.version, &rt.kind) {
            Some(name) if builtin_resource(rt) => name.to_string(),
            _ => {
                let crd = server
                    .store
                    .read()
                    .get(
                        &CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions"),
                        "",
                        &format!("{}.{}", rt.plural, rt.group),
                    )
                    .map(|o| o.value())
                    .unwrap_or(Value::Null);
                let name = format!(
                    "{}.{}.{}",
                    rt.group.split('.').rev().collect::<Vec<_>>().join("."),
                    rt.version,
                    rt.kind
                );
                custom.push((name.clone(), custom_resource_schema(&crd, rt)));
                roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into());
                name
            }
        };
        roots.push(schema.clone());
        resource_paths(rt, &schema, &mut paths);
    }
    let mut components = Map::new();
    for name in reachable(&builtins.components, &roots, V3_SCHEMAS) {
        if let Some(s) = builtins.components.get(&name) {
            components.insert(name, s.clone());
        }
    }
    for (name, schema) in custom {
        components.insert(name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server.options.git_version},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

/// The `/openapi/v3` index: kube-apiserver's documents testenv serves, and one entry per
/// group/version of custom resources, each with a content hash.
pub fn index_document(server: &ApiServer) -> Value {
    let table = server.resources();
    let upstream = upstream();
    let mut paths = Map::new();
    for (key, (_, hash)) in &upstream.v3 {
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    for (group, versions) in table.groups() {
        for version in versions {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            if upstream.v3.contains_key(&key) {
                continue;
            }
            let hash = group_version_document(server, &group, &version)
                .map(|d| content_hash(&serde_json::to_vec(&d).unwrap_or_default()))
                .unwrap_or_default();
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// kube-apiserver's documents as stored: `{"v3": {"api/v1": document, ...}, "v2": document,
/// "kinds": [[group, version, kind], ...]}`.
const UPSTREAM_GZ: &[u8] = include_bytes!("../data/openapi-kube-apiserver.json.gz");

/// kube-apiserver's documents, decoded once, with each v3 document's bytes and hash.
struct Upstream {
    kinds: BTreeSet<(String, String, String)>,
    v3: BTreeMap<String, (bytes::Bytes, String)>,
    v2: bytes::Bytes,
    v2_protobuf: bytes::Bytes,
}

fn upstream() -> &'static Upstream {
    static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
    UPSTREAM.get_or_init(|| {
        let stored = stored_upstream_documents();
        let v3 = stored["v3"]
            .as_object()
            .map(|docs| {
                docs.iter()
                    .map(|(key, doc)| {
                        let bytes = serde_json::to_vec(doc).unwrap_or_default();
                        let hash = content_hash(&bytes);
                        (key.clone(), (bytes::Bytes::from(bytes), hash))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let v2 = bytes::Bytes::from(serde_json::to_vec(&stored["v2"]).unwrap_or_default());
        let v2_protobuf = bytes::Bytes::from(stored_upstream_v2_protobuf());
        let kinds = stored["kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|gvk| {
                let part = |i: usize| gvk.get(i).and_then(Value::as_str).map(str::to_string);
                Some((part(0)?, part(1)?, part(2)?))
            })
            .collect();
        Upstream {
            kinds,
            v3,
            v2,
            v2_protobuf,
        }
    })
}

/// The stored copy of kube-apiserver's documents (`{"v3": {...}, "v2": {...}, "kinds": [...]}`), as
/// [`prune_upstream`] made it. The copy is compiled in: if it does not decode, the build is
/// broken, and testenv serves empty documents rather than fail every request.
pub fn stored_upstream_documents() -> Value {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(UPSTREAM_GZ)
        .read_to_end(&mut text)
        .ok()
        .and_then(|_| serde_json::from_slice(&text).ok())
        .unwrap_or_else(|| json!({"v3": {}, "v2": {}}))
}

/// Compresses documents for storage as `data/openapi-kube-apiserver.json.gz`, pretty-printed so
/// that `zdiff` of two copies shows which schema changed.
pub fn encode_upstream_documents(documents: &Value) -> Vec<u8> {
    let text = serde_json::to_vec_pretty(documents).unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&text);
    gz.finish().unwrap_or_default()
}

/// Whether testenv serves `path` (an OpenAPI path such as `/api/v1/namespaces/{namespace}/pods`
/// or `/apis/apps/v1/watch/deployments`): the roots, the served groups and group-versions, and
/// the operations of the served resources and their subresources.
pub fn serves_path(table: &ResourceTable, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let served_version = |group: &str, version: &str| {
        table
            .groups()
            .iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
    };
    let (group, version, rest) = match segments.as_slice() {
        ["api"] | ["apis"] | ["version"] => return true,
        ["apis", group] => return table.groups().iter().any(|(g, _)| g == group),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return false,
    };
    if !served_version(group, version) {
        return false;
    }
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let rest = match rest {
        ["namespaces", "{namespace}", rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let resource = |plural: &str| table.get(group, version, plural);
    match rest {
        [] => !watch,
        [plural] => resource(plural).is_some_and(|rt| !(watch && rt.is_review())),
        [plural, "{name}"] => resource(plural).is_some_and(|rt| !rt.is_review()),
        // Namespaces' `finalize` is served beside the table's subresources (as discovery lists it).
        ["namespaces", "{name}", "finalize"] => !watch && group.is_empty(),
        [plural, "{name}", sub] => {
            !watch && resource(plural).is_some_and(|rt| rt.subresources.iter().any(|s| s == sub))
        }
        _ => false,
    }
}

/// kube-apiserver's documents pruned to what testenv serves: each v3 document of `v3` (keyed as
/// the `/openapi/v3` index keys them) whose root testenv serves, and the v2 document, each with
/// the paths [`serves_path`] keeps and the schemas those reach.
pub fn prune_upstream(v3: &BTreeMap<String, Value>, v2: &Value) -> Value {
    let table = ResourceTable::builtin();
    let prune = |doc: &Value, schemas_pointer: &str, prefix: &str| -> Value {
        let mut doc = doc.clone();
        let paths: Map<String, Value> = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .filter(|(path, _)| serves_path(&table, path))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut roots = Vec::new();
        collect_refs(&Value::Object(paths.clone()), prefix, &mut roots);
        let all = doc
            .pointer(schemas_pointer)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let kept: Map<String, Value> = reachable(&all, &roots, prefix)
            .into_iter()
            .filter_map(|name| all.get(&name).map(|s| (name, s.clone())))
            .collect();
        doc["paths"] = Value::Object(paths);
        if let Some(schemas) = doc.pointer_mut(schemas_pointer) {
            *schemas = Value::Object(kept);
        }
        doc
    };
    let v3: Map<String, Value> = v3
        .iter()
        .filter(|(key, _)| serves_path(&table, key))
        .map(|(key, doc)| (key.clone(), prune(doc, "/components/schemas", V3_SCHEMAS)))
        .collect();
    // Every kind kube-apiserver serves, before pruning: its codec decodes these (and refuses
    // others as "not registered") whichever resource a body is sent to.
    let mut kinds: Vec<Value> = v2["definitions"]
        .as_object()
        .into_iter()
        .flat_map(|definitions| definitions.values())
        .filter_map(|d| d["x-kubernetes-group-version-kind"].as_array())
        .flatten()
        .map(|gvk| json!([gvk["group"], gvk["version"], gvk["kind"]]))
        .collect();
    kinds.sort_by_key(Value::to_string);
    kinds.dedup();
    json!({"v3": v3, "v2": prune(v2, "/definitions", V2_DEFINITIONS), "kinds": kinds})
}

/// Whether kube-apiserver serves `kind` in `group`/`version` (its codec decodes such a body).
pub fn is_upstream_kind(group: &str, version: &str, kind: &str) -> bool {
    upstream()
        .kinds
        .contains(&(group.to_string(), version.to_string(), kind.to_string()))
}

/// The media type of gnostic's protobuf OpenAPI v2 document, which client-go asks for.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// A varint on the wire.
fn proto_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited protobuf field.
fn proto_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    proto_varint(out, u64::from(field << 3 | 2));
    proto_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes one field as it was read.
fn proto_field(out: &mut Vec<u8>, field: u32, value: WireValue<'_>) {
    let tag = |wire: u8| u64::from(field << 3 | u32::from(wire));
    match value {
        WireValue::Bytes(b) => proto_bytes(out, field, b),
        WireValue::Varint(v) => {
            proto_varint(out, tag(0));
            proto_varint(out, v);
        }
        WireValue::Fixed64(v) => {
            proto_varint(out, tag(1));
            out.extend_from_slice(&v.to_le_bytes());
        }
        WireValue::Fixed32(v) => {
            proto_varint(out, tag(5));
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The entries of a gnostic `Paths` (field 2, `NamedPathItem`) or `Definitions` (field 1,
/// `NamedSchema`) message whose name (field 1 of the entry) `keep` accepts; other fields as read.
fn keep_named(
    message: &[u8],
    entries: u32,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<u8>, crate::protobuf::ProtobufError> {
    let mut out = Vec::new();
    let mut fields = FieldReader::new(message, "openapi_v2.Paths");
    while let Some((number, value)) = fields.next_field()? {
        if let (true, WireValue::Bytes(entry)) = (number == entries, value) {
            let mut name = "";
            let mut entry_fields = FieldReader::new(entry, "openapi_v2.Named");
            while let Some((n, v)) = entry_fields.next_field()? {
                if let (1, WireValue::Bytes(b)) = (n, v) {
                    name = std::str::from_utf8(b).unwrap_or("");
                }
            }
            if !keep(name) {
                continue;
            }
        }
        proto_field(&mut out, number, value);
    }
    Ok(out)
}

/// kube-apiserver's protobuf `/openapi/v2` (gnostic's `openapi_v2.Document`) pruned to the paths
/// and definitions `pruned` (its JSON form, from [`prune_upstream`]) keeps; every kept entry keeps
/// kube-apiserver's bytes.
pub fn prune_upstream_v2_protobuf(
    document: &[u8],
    pruned: &Value,
) -> Result<Vec<u8>, crate::protobuf::ProtobufError> {
    let has = |pointer: &'static str| {
        move |name: &str| {
            pruned
                .pointer(pointer)
                .is_some_and(|m| m.get(name).is_some())
        }
    };
    let (paths, definitions) = (has("/paths"), has("/definitions"));
    let mut out = Vec::new();
    let mut fields = FieldReader::new(document, "openapi_v2.Document");
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            // Document.paths: Paths.path (2) entries.
            (8, WireValue::Bytes(b)) => proto_bytes(&mut out, 8, &keep_named(b, 2, &paths)?),
            // Document.definitions: Definitions.additional_properties (1) entries.
            (9, WireValue::Bytes(b)) => proto_bytes(&mut out, 9, &keep_named(b, 1, &definitions)?),
            (number, value) => proto_field(&mut out, number, value),
        }
    }
    Ok(out)
}

/// kube-apiserver's protobuf `/openapi/v2` as stored (pruned by [`prune_upstream_v2_protobuf`]).
const UPSTREAM_V2_PROTOBUF_GZ: &[u8] = include_bytes!("../data/openapi-v2-kube-apiserver.pb.gz");

/// The stored protobuf `/openapi/v2`, decompressed (empty if the compiled-in copy is broken).
pub fn stored_upstream_v2_protobuf() -> Vec<u8> {
    let mut bytes = Vec::new();
    match flate2::read::GzDecoder::new(UPSTREAM_V2_PROTOBUF_GZ).read_to_end(&mut bytes) {
        Ok(_) => bytes,
        Err(_) => Vec::new(),
    }
}

/// Compresses the protobuf document for storage as `data/openapi-v2-kube-apiserver.pb.gz`.
pub fn encode_upstream_v2_protobuf(document: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(document);
    gz.finish().unwrap_or_default()
}

/// FNV-1a over the document, as a hex string (stable across runs, changes with content).
fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// Serves `/openapi/v2` and `/openapi/v3/...`.
pub fn serve(server: &ApiServer, route: &Route, accept: &str) -> Response<Body> {
    match route {
        Route::OpenApiV2 => {
            if accept.contains(OPENAPI_V2_PROTOBUF) {
                // Go's mime parser rejects the '@' of the protobuf media type; kube-openapi
                // answers octet-stream as well.
                crate::server::bytes_response(
                    200,
                    "application/octet-stream",
                    upstream().v2_protobuf.clone(),
                )
            } else {
                crate::server::bytes_response(200, "application/json", upstream().v2.clone())
            }
        }
        Route::OpenApiV3Index => json_response(200, "application/json", index_document(server)),
        Route::OpenApiV3(rest) => {
            if let Some((bytes, _)) = upstream().v3.get(rest.trim_matches('/')) {
                return crate::server::bytes_response(200, "application/json", bytes.clone());
            }
            let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            let doc = match segs.as_slice() {
                ["api", version] => group_version_document(server, "", version),
                ["apis", group, version] => group_version_document(server, group, version),
                _ => None,
            };
            match doc {
                Some(d) => json_response(200, "application/json", d),
                None => error_response(&ApiError::path_not_found()),
            }
        }
        _ => error_response(&ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_refs() {
        let s = builtin_schemas();
        let r = reachable(
            &s.components,
            &["io.k8s.api.core.v1.Service".to_string()],
            V3_SCHEMAS,
        );
        assert!(r.contains("io.k8s.api.core.v1.ServicePort"));
        assert!(r.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!r.contains("io.k8s.api.core.v1.PodSpec"));
    }

    /// A `NamedPathItem` or `NamedSchema`: its name and an opaque value.
    fn named(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        proto_bytes(&mut out, 1, name.as_bytes());
        proto_bytes(&mut out, 2, value);
        out
    }

    #[test]
    fn protobuf_v2_keeps_the_named_entries_the_json_form_keeps_and_every_other_field() {
        let mut paths = Vec::new();
        proto_bytes(&mut paths, 2, &named("/api/v1/pods", b"\x0a\x01p"));
        proto_bytes(&mut paths, 2, &named("/apis/batch/v1/jobs", b"\x0a\x01j"));
        let mut definitions = Vec::new();
        proto_bytes(
            &mut definitions,
            1,
            &named("io.k8s.api.core.v1.Pod", b"\x12\x01s"),
        );
        proto_bytes(
            &mut definitions,
            1,
            &named("io.k8s.api.batch.v1.Job", b"\x12\x01t"),
        );
        let mut document = Vec::new();
        proto_bytes(&mut document, 1, b"2.0");
        proto_bytes(&mut document, 8, &paths);
        proto_bytes(&mut document, 9, &definitions);
        proto_field(&mut document, 20, WireValue::Varint(300));
        let pruned = json!({"paths": {"/api/v1/pods": {}},
            "definitions": {"io.k8s.api.core.v1.Pod": {}}});
        let mut want_paths = Vec::new();
        proto_bytes(&mut want_paths, 2, &named("/api/v1/pods", b"\x0a\x01p"));
        let mut want_definitions = Vec::new();
        proto_bytes(
            &mut want_definitions,
            1,
            &named("io.k8s.api.core.v1.Pod", b"\x12\x01s"),
        );
        let mut want = Vec::new();
        proto_bytes(&mut want, 1, b"2.0");
        proto_bytes(&mut want, 8, &want_paths);
        proto_bytes(&mut want, 9, &want_definitions);
        proto_field(&mut want, 20, WireValue::Varint(300));
        assert_eq!(
            prune_upstream_v2_protobuf(&document, &pruned).unwrap(),
            want
        );
        assert!(prune_upstream_v2_protobuf(b"\x42\x05ab", &pruned).is_err());
    }

    #[test]
    fn paths_are_served_when_their_resource_and_subresource_are() {
        let table = ResourceTable::builtin();
        for served in [
            "/api/",
            "/api/v1/",
            "/apis/apps/",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/watch/namespaces/{namespace}/services",
            "/api/v1/namespaces/{name}/finalize",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "version",
        ] {
            assert!(serves_path(&table, served), "{served}");
        }
        for unserved in [
            "/apis/batch/v1/jobs",
            "/apis/batch/",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "/api/v1/watch/namespaces/{namespace}/pods/{name}/status",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}",
            "/apis/authorization.k8s.io/v1/watch/selfsubjectaccessreviews",
            "/logs/",
            ".well-known/openid-configuration",
        ] {
            assert!(!serves_path(&table, unserved), "{unserved}");
        }
    }

    #[test]
    fn the_stored_documents_decode_and_hold_the_core_group() {
        let stored = stored_upstream_documents();
        assert!(
            stored
                .pointer("/v3/api~1v1/components/schemas/io.k8s.api.core.v1.Service")
                .is_some()
        );
        assert!(
            stored
                .pointer("/v2/definitions/io.k8s.api.core.v1.Service")
                .is_some()
        );
        assert!(!stored_upstream_v2_protobuf().is_empty());
    }

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(content_hash(b""), "CBF29CE484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
