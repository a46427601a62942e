//! OpenAPI documents as kubectl downloads them: `/openapi/v3` (an index of group-versions) and
//! `/openapi/v3/{api/v1 | apis/group/version}` (paths and component schemas), so that
//! `kubectl apply` finds server-side field validation and the strategic-merge metadata it needs.
//! `/openapi/v2` is a valid document without paths or definitions (kubectl 1.27 and 1.28 refuse to
//! apply without one; finding no patch metadata there, they use their compiled-in types).
//!
//! Schemas of the built-in kinds come from k8s-openapi's `schemars` impls; the patch-strategy
//! extensions upstream derives from Go struct tags are added from [`PATCH_METADATA`].

use std::collections::BTreeSet;
use std::sync::OnceLock;

use http::Response;
use serde_json::{Map, Value, json};

use crate::resources::{ResourceTable, ResourceType};
use crate::router::Route;
use crate::server::{ApiServer, Body, error_response, json_response};
use crate::status::ApiError;
use crate::store::CollectionKey;

use k8s_openapi::schemars::{SchemaGenerator, generate::SchemaSettings};

/// `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` of one field, as the Go struct
/// tags of k8s.io/api declare them: (schema, field, strategy, merge key).
pub const PATCH_METADATA: &[(&str, &str, &str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        "",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        "uid",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        "name",
    ),
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        "name",
    ),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        "topologyKey",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        "containerPort",
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        "devicePath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        "containerPort",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        "devicePath",
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", "ip"),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", "ip"),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        "name",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", ""),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.networking.v1.ServiceCIDRStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        "",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
];

/// The built-in kinds with schemas: (group, version, kind, schema name).
fn builtin_kinds(
    generator: &mut SchemaGenerator,
) -> Vec<(&'static str, &'static str, &'static str, String)> {
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, coordination::v1 as coordination,
        core::v1 as core, discovery::v1 as discovery, events::v1 as events,
        networking::v1 as networking,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::schemars::JsonSchema;

    fn one<T: JsonSchema>(
        generator: &mut SchemaGenerator,
        group: &'static str,
        version: &'static str,
        kind: &'static str,
    ) -> (&'static str, &'static str, &'static str, String) {
        let _ = generator.subschema_for::<T>();
        (group, version, kind, T::schema_name().into_owned())
    }
    let g = generator;
    vec![
        one::<core::Namespace>(g, "", "v1", "Namespace"),
        one::<core::Node>(g, "", "v1", "Node"),
        one::<core::Pod>(g, "", "v1", "Pod"),
        one::<core::Service>(g, "", "v1", "Service"),
        one::<core::Endpoints>(g, "", "v1", "Endpoints"),
        one::<core::ConfigMap>(g, "", "v1", "ConfigMap"),
        one::<core::Secret>(g, "", "v1", "Secret"),
        one::<core::ServiceAccount>(g, "", "v1", "ServiceAccount"),
        one::<core::Event>(g, "", "v1", "Event"),
        one::<discovery::EndpointSlice>(g, "discovery.k8s.io", "v1", "EndpointSlice"),
        one::<networking::IPAddress>(g, "networking.k8s.io", "v1", "IPAddress"),
        one::<networking::ServiceCIDR>(g, "networking.k8s.io", "v1", "ServiceCIDR"),
        one::<coordination::Lease>(g, "coordination.k8s.io", "v1", "Lease"),
        one::<events::Event>(g, "events.k8s.io", "v1", "Event"),
        one::<admission::ValidatingWebhookConfiguration>(
            g,
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        ),
        one::<admission::MutatingWebhookConfiguration>(
            g,
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
        ),
        one::<apiextensions::CustomResourceDefinition>(
            g,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        ),
        one::<apps::Deployment>(g, "apps", "v1", "Deployment"),
        one::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(g, "", "v1", "Status"),
        one::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
            g,
            "",
            "v1",
            "DeleteOptions",
        ),
    ]
}

/// The component schemas of every built-in kind, with GVK and patch extensions.
pub struct BuiltinSchemas {
    /// `components.schemas`, keyed by schema name.
    pub components: Map<String, Value>,
    /// (group, version, kind) → schema name.
    pub kinds: Vec<(String, String, String, String)>,
}

impl BuiltinSchemas {
    /// The schema name of a built-in kind.
    pub fn schema_name(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .iter()
            .find(|(g, v, k, _)| g == group && v == version && k == kind)
            .map(|(_, _, _, name)| name.as_str())
    }
}

/// The built-in schemas, generated once.
pub fn builtin_schemas() -> &'static BuiltinSchemas {
    static SCHEMAS: OnceLock<BuiltinSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let kinds = builtin_kinds(&mut generator);
        let mut components = generator.take_definitions(true);
        for (group, version, kind, name) in &kinds {
            if *kind == "Status" || *kind == "DeleteOptions" {
                continue;
            }
            if let Some(Value::Object(schema)) = components.get_mut(name) {
                schema.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": group, "version": version, "kind": kind}]),
                );
            }
        }
        for (schema, field, strategy, key) in PATCH_METADATA {
            let Some(prop) = components
                .get_mut(*schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(*field))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if !key.is_empty() {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
        components.insert(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
            json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
        );
        BuiltinSchemas {
            components,
            kinds: kinds
                .into_iter()
                .map(|(g, v, k, n)| (g.to_string(), v.to_string(), k.to_string(), n))
                .collect(),
        }
    })
}

/// The `$ref` a schema points at, through a single-element `allOf` wrapper.
pub fn schema_ref(schema: &Value) -> Option<&str> {
    let s = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) if !all.is_empty() => &all[0],
        _ => schema,
    };
    s.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(r.to_string());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The names reachable from `roots` through `$ref`s, roots included.
fn reachable(components: &Map<String, Value>, roots: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.to_vec();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = components.get(&name) {
            let mut refs = Vec::new();
            collect_refs(s, &mut refs);
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
    for sub in &rt.subresources {
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
    let types: Vec<_> = crate::discovery::resources_of(&table, group, version)
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
    for name in reachable(&builtins.components, &roots) {
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

/// The `/openapi/v3` index: one entry per served group/version, with a content hash.
pub fn index_document(server: &ApiServer) -> Value {
    let table = server.resources();
    let mut paths = Map::new();
    for (group, versions) in table.groups() {
        for version in versions {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
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

/// The media type of gnostic's protobuf OpenAPI v2 document, which client-go asks for.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// A length-delimited protobuf field.
fn proto_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    let mut len = bytes.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// `openapi_v2.Document{swagger: "2.0", info: {title: "Kubernetes", version}}` in protobuf.
pub fn v2_protobuf(version: &str) -> Vec<u8> {
    let mut info = Vec::new();
    proto_bytes(&mut info, 1, b"Kubernetes");
    proto_bytes(&mut info, 2, version.as_bytes());
    let mut doc = Vec::new();
    proto_bytes(&mut doc, 1, b"2.0");
    proto_bytes(&mut doc, 2, &info);
    doc
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
            let version = &server.options.git_version;
            if accept.contains(OPENAPI_V2_PROTOBUF) {
                // Go's mime parser rejects the '@' of the protobuf media type; kube-openapi
                // answers octet-stream as well.
                crate::server::bytes_response(
                    200,
                    "application/octet-stream",
                    bytes::Bytes::from(v2_protobuf(version)),
                )
            } else {
                json_response(
                    200,
                    "application/json",
                    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": version},
                        "paths": {}, "definitions": {}}),
                )
            }
        }
        Route::OpenApiV3Index => json_response(200, "application/json", index_document(server)),
        Route::OpenApiV3(rest) => {
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

/// The aggregated-discovery version a client's Accept header asks for first (`v2`, or `v2beta1`
/// for kubectl 1.27), if any.
pub fn aggregated_discovery_version(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let params: Vec<(&str, &str)> = media
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .collect();
        let has = |k: &str, v: &str| params.iter().any(|(pk, pv)| *pk == k && *pv == v);
        if has("g", "apidiscovery.k8s.io") && has("as", "APIGroupDiscoveryList") {
            if has("v", "v2") {
                return Some("v2");
            }
            if has("v", "v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

/// One `APIResourceDiscovery` entry.
fn resource_discovery(rt: &ResourceType) -> Value {
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": kind,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": crate::discovery::VERBS,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    if !rt.subresources.is_empty() {
        let subs: Vec<Value> = rt
            .subresources
            .iter()
            .map(|s| json!({"subresource": s, "responseKind": kind, "verbs": ["get", "patch", "update"]}))
            .collect();
        r["subresources"] = json!(subs);
    }
    r
}

/// The `APIGroupDiscoveryList` of the core group (`core`) or of the named groups.
pub fn aggregated_discovery_document(table: &ResourceTable, core: bool, version: &str) -> Value {
    let items: Vec<Value> = table
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = crate::discovery::resources_of(table, &group, v)
                        .map(|rt| resource_discovery(rt))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`, or `v2beta1`) when the client asks for it;
/// `None` falls back to the legacy documents.
pub fn aggregated_discovery(
    server: &ApiServer,
    accept: &str,
    core: bool,
) -> Option<Response<Body>> {
    let version = aggregated_discovery_version(accept)?;
    let doc = aggregated_discovery_document(&server.resources(), core, version);
    Some(json_response(
        200,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        doc,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_carry_gvk_and_patch_metadata() {
        let s = builtin_schemas();
        let svc = &s.components["io.k8s.api.core.v1.Service"];
        assert_eq!(
            svc["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Service"}])
        );
        let ports = &s.components["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], json!("port"));
        assert_eq!(ports["x-kubernetes-patch-strategy"], json!("merge"));
        assert_eq!(
            schema_ref(&svc["properties"]["spec"]),
            Some("io.k8s.api.core.v1.ServiceSpec")
        );
        let fin = &s.components["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(fin["x-kubernetes-patch-strategy"], json!("merge"));
        // Every table entry names a real property.
        for (schema, field, _, _) in PATCH_METADATA {
            assert!(
                s.components[*schema]["properties"].get(*field).is_some(),
                "{schema}.{field}"
            );
        }
        assert_eq!(
            s.schema_name("networking.k8s.io", "v1", "IPAddress"),
            Some("io.k8s.api.networking.v1.IPAddress")
        );
    }

    #[test]
    fn reachability_follows_refs() {
        let s = builtin_schemas();
        let r = reachable(&s.components, &["io.k8s.api.core.v1.Service".to_string()]);
        assert!(r.contains("io.k8s.api.core.v1.ServicePort"));
        assert!(r.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!r.contains("io.k8s.api.core.v1.PodSpec"));
    }

    #[test]
    fn v2_document_is_a_gnostic_protobuf_document() {
        assert_eq!(
            v2_protobuf("v1"),
            b"\x0a\x032.0\x12\x10\x0a\x0aKubernetes\x12\x02v1".to_vec()
        );
    }

    #[test]
    fn aggregated_discovery_lists_groups_versions_and_resources() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_discovery_version(kubectl), Some("v2"));
        assert_eq!(
            aggregated_discovery_version(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2beta1")
        );
        assert_eq!(aggregated_discovery_version("application/json, */*"), None);

        let table = ResourceTable::builtin();
        let core = aggregated_discovery_document(&table, true, "v2");
        assert_eq!(core["apiVersion"], json!("apidiscovery.k8s.io/v2"));
        assert_eq!(core["items"].as_array().map(Vec::len), Some(1));
        let v1 = &core["items"][0]["versions"][0];
        assert_eq!(v1["version"], json!("v1"));
        let svc = v1["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == json!("services")))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            svc,
            json!({"resource": "services", "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                "scope": "Namespaced", "singularResource": "service", "verbs": crate::discovery::VERBS,
                "shortNames": ["svc"], "categories": ["all"],
                "subresources": [{"subresource": "status",
                    "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                    "verbs": ["get", "patch", "update"]}]})
        );
        let groups = aggregated_discovery_document(&table, false, "v2");
        let names: Vec<&str> = groups["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g["metadata"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(names.contains(&"discovery.k8s.io") && !names.contains(&""));
    }

    #[test]
    fn hashes_are_stable_hex() {
        assert_eq!(content_hash(b""), "CBF29CE484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
