//! The REST semantics of the Kubernetes API over the store: get, list, create, update, patch,
//! delete, deletecollection and watch, with defaulting, admission, validation and metadata rules.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::admission::{AdmissionAttributes, Operation};
use crate::defaults::{apply_admission_defaults, apply_defaults};
use crate::deletion;
use crate::meta::{
    MetaWrite, generates_suffix, name_rule, validate_kube_finalizer_names, validate_object_meta,
};
use crate::names;
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::ApiServer;
use crate::status::{ApiError, cause};
use crate::store::{CollectionKey, CommitError, StoredObject};

/// The verbs of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// Lower-case name, as audit logs and RBAC use it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request routed to a resource.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// What to do.
    pub verb: Verb,
    /// The resource type.
    pub resource: Arc<ResourceType>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Name from the path.
    pub name: Option<String>,
    /// `status` and similar.
    pub subresource: Option<String>,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Request body.
    pub body: Bytes,
    /// Content-Type header.
    pub content_type: String,
    /// User-Agent header, the default field manager.
    pub user_agent: String,
}

impl ApiRequest {
    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    pub(crate) fn collection(&self) -> CollectionKey {
        crate::conversion::storage_collection(&self.resource)
    }

    pub(crate) fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    pub(crate) fn field_manager(&self) -> String {
        match self.q("fieldManager") {
            Some(m) => m.to_string(),
            // kube-apiserver records a request without a User-Agent as "unknown".
            None => match self.user_agent.split('/').next().unwrap_or("") {
                "" => "unknown".to_string(),
                prefix => prefix.to_string(),
            },
        }
    }
}

/// One page of a LIST: its resourceVersion, the objects, and the continue token.
type ListPage = (u64, Vec<Arc<StoredObject>>, Option<(String, Option<u64>)>);

/// A successful answer: a status code and a JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP code.
    pub code: u16,
    /// The object or list.
    pub body: Value,
}

pub(crate) fn parse_body(req: &ApiRequest) -> Result<Value, ApiError> {
    if crate::protobuf::is_protobuf(&req.content_type) && !req.body.is_empty() {
        return crate::protobuf::decode_body(&req.body, &req.resource);
    }
    let media_type = req.content_type.split(';').next().unwrap_or("").trim();
    if !matches!(media_type, "" | "application/json" | "application/yaml") {
        return Err(ApiError::unsupported_media_type());
    }
    if req.content_type.contains("yaml") && !req.body.is_empty() {
        return serde_saphyr::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    let unrecognized = |error: String| {
        let kind = match &req.subresource {
            Some(sub) => req.resource.subresource_kind(sub),
            None => req.resource.kind.clone(),
        };
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {error} ({})",
            crate::protobuf::summarize(&req.body)
        ))
    };
    if let Some(error) = gocompat::json::syntax_error(&req.body) {
        return Err(unrecognized(error));
    }
    let value: Value =
        serde_json::from_slice(&req.body).map_err(|e| unrecognized(e.to_string()))?;
    if !value.is_object() {
        return Err(unrecognized(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            gocompat::json::value_kind(&value),
            crate::decode::GO_TYPE_META
        )));
    }
    Ok(value)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub(crate) fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    meta(obj)?.get(key)?.as_str()
}

/// `ValidateCreateOptions` / `ValidateUpdateOptions` / `ValidatePatchOptions`: the query
/// parameters of a write, answered 422 on `{Create,Update,Patch}Options.meta.k8s.io`.
fn check_write_options(req: &ApiRequest, patch_type: Option<PatchType>) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let kind = match (req.verb, patch_type) {
        (Verb::Patch, Some(pt)) => {
            if pt != PatchType::Apply {
                if req.query.contains_key("force") {
                    causes.push(crate::status::cause(
                        "FieldValueForbidden",
                        "force",
                        "Forbidden: may not be specified for non-apply patch",
                    ));
                }
            } else if req.q("fieldManager").is_none() {
                causes.push(crate::status::cause(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
            "PatchOptions"
        }
        (Verb::Update, _) => "UpdateOptions",
        _ => "CreateOptions",
    };
    if let Some(dry) = req.query.get("dryRun")
        && dry != "All"
    {
        causes.push(crate::status::cause(
            "FieldValueNotSupported",
            "dryRun",
            format!(
                "Unsupported value: [{}]: supported values: \"All\"",
                crate::meta::go_quote(dry)
            ),
        ));
    }
    if let Some(mode) = req.query.get("fieldValidation")
        && !matches!(mode.as_str(), "" | "Ignore" | "Strict" | "Warn")
    {
        causes.push(crate::status::cause(
            "FieldValueNotSupported",
            "fieldValidation",
            format!(
                "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                crate::meta::go_quote(mode)
            ),
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, "meta.k8s.io", "", &causes))
    }
}

/// The fields a write's strategy resets, which its manager therefore does not own: `status` on
/// the main resource of a kind with a status subresource.
fn reset_fields(rt: &ResourceType, subresource: Option<&str>) -> &'static [&'static str] {
    if subresource.is_none() && rt.subresources.iter().any(|s| s == "status") {
        &["status"]
    } else {
        &[]
    }
}

/// `ValidateListOptions` and the resourceVersion parsing of kube-apiserver's LIST handler.
fn check_list_options(req: &ApiRequest) -> Result<(), ApiError> {
    let rv = req.q("resourceVersion");
    if let Some(rv) = rv
        && rv.parse::<u64>().is_err()
    {
        return Err(ApiError::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {}: strconv.ParseUint: parsing {}: invalid syntax",
            crate::meta::go_quote(rv),
            crate::meta::go_quote(rv)
        )));
    }
    let forbidden = |reason: &str, detail: String| {
        ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[crate::status::cause(
                reason,
                "resourceVersionMatch",
                &detail,
            )],
        )
    };
    match (req.q("resourceVersionMatch"), rv) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(forbidden(
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                .into(),
        )),
        (Some("Exact"), Some("0")) => Err(forbidden(
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
                .into(),
        )),
        (Some("Exact" | "NotOlderThan"), Some(_)) => Ok(()),
        (Some(other), Some(_)) => Err(forbidden(
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: \"Exact\", \"NotOlderThan\", \"\"",
                crate::meta::go_quote(other)
            ),
        )),
    }
}

/// Checks and fills apiVersion/kind against the resource the URL names.
///
/// For a built-in resource, a body of another type is refused as kube-apiserver's codec refuses
/// it: the body is decoded as the type it names (a type it does not know: "no kind is
/// registered"; a decode error: that error), and what decodes cannot be converted to the URL's
/// internal type ("unknown conversion"); only a type that converts to the same internal type
/// (another version or group of the same kind) reaches the create handler's API version check.
fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = rt.api_version();
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let av = text("apiVersion").unwrap_or_else(|| want_av.clone());
    let kind = text("kind").unwrap_or_else(|| rt.kind.clone());
    if av == want_av && kind == rt.kind {
        obj["apiVersion"] = json!(want_av);
        obj["kind"] = json!(rt.kind);
        return Ok(());
    }
    let mismatched_version = || {
        ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        ))
    };
    if !rt.is_builtin() {
        if av != want_av {
            return Err(mismatched_version());
        }
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    let (group, version) = av.rsplit_once('/').unwrap_or(("", av.as_str()));
    let cannot_handle = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {}: {why}",
            crate::meta::go_quote(version),
            rt.kind
        ))
    };
    let registered = crate::schemas::builtin_schemas()
        .schema_name(group, version, &kind)
        .is_some()
        || crate::openapi::is_upstream_kind(group, version, &kind);
    if !registered {
        return Err(cannot_handle(format!(
            "no kind {} is registered for version {} in scheme \"pkg/runtime/scheme.go:110\"",
            crate::meta::go_quote(&kind),
            crate::meta::go_quote(&av),
        )));
    }
    if kind == rt.kind && internal_package(group) == internal_package(&rt.group) {
        return Err(mismatched_version());
    }
    let as_named = ResourceType {
        group: group.to_string(),
        version: version.to_string(),
        kind: kind.clone(),
        ..rt.clone()
    };
    if let Err(e) = crate::decode::decode_builtin_object(&as_named, None, &mut obj.clone()) {
        return Err(cannot_handle(e));
    }
    Err(cannot_handle(format!(
        "converting ({version}.{kind}) to ({}.{}): unknown conversion",
        internal_package(&rt.group),
        rt.kind
    )))
}

/// The Go package of a group's internal types in kube-apiserver (`core` for the core group and
/// for events.k8s.io, whose Event is core's; otherwise the group's first label).
fn internal_package(group: &str) -> &str {
    match group {
        "" | "events.k8s.io" => "core",
        other => other.split('.').next().unwrap_or(other),
    }
}

/// The 422 of an object `rt`'s registry refuses, naming the kind it judges.
fn invalid_object(
    rt: &ResourceType,
    name: &str,
    causes: &[crate::status::StatusCause],
) -> ApiError {
    ApiError::invalid(&rt.kind, crate::conversion::judged_group(rt), name, causes)
}

/// Everything but metadata and status: a change here bumps metadata.generation.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

/// Equality ignoring resourceVersion. managedFields count: an apply that only takes ownership
/// must still be stored, and field tracking leaves them untouched when nothing else changed.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

impl ApiServer {
    /// Serves one routed request.
    pub async fn serve_api(self: &Arc<Self>, req: ApiRequest) -> Result<Reply, ApiError> {
        if req.subresource.as_deref() == Some(crate::scale::SCALE) {
            return self.serve_scale(&req).await;
        }
        match req.verb {
            Verb::Get => self.get(&req),
            Verb::List => self.list(&req),
            Verb::Create => self.create(&req).await,
            Verb::Update => self.update(&req).await,
            Verb::Patch => self.patch(&req).await,
            Verb::Delete => self.delete(&req).await,
            Verb::DeleteCollection => self.delete_collection(&req).await,
            Verb::Watch => Err(ApiError::internal("watch is served by the streaming path")),
        }
    }

    /// Drops the fields a built-in kind's Go type lacks, as kube-apiserver's decoder does, and
    /// answers for them as `fieldValidation` asks (`raw`: look for duplicate keys in the body).
    pub(crate) fn decode_fields(
        &self,
        req: &ApiRequest,
        obj: &mut Value,
        raw: bool,
    ) -> Result<(), ApiError> {
        let mode = crate::decode::FieldValidation::parse(
            req.query.get("fieldValidation").map(String::as_str),
        )?;
        let problems = if self.is_builtin(&req.resource) {
            let json_body = raw
                && !crate::protobuf::is_protobuf(&req.content_type)
                && !req.content_type.contains("yaml");
            crate::decode::decode_builtin(&req.resource, json_body.then_some(&req.body[..]), obj)?
        } else {
            self.prune_custom(&req.resource, obj)
        };
        match mode {
            _ if problems.0.is_empty() => Ok(()),
            crate::decode::FieldValidation::Strict => {
                let rt = &req.resource;
                let group_version = rt.api_version();
                Err(ApiError::bad_request(format!(
                    "{kind} in version {version} cannot be handled as a {kind}: strict decoding error: {}",
                    problems.0.join(", "),
                    kind = rt.kind,
                    version = crate::meta::go_quote(
                        group_version.rsplit('/').next().unwrap_or(&group_version)
                    ),
                )))
            }
            crate::decode::FieldValidation::Warn => {
                crate::admission::add_warnings(&problems.0);
                Ok(())
            }
            crate::decode::FieldValidation::Ignore => Ok(()),
        }
    }

    /// Decodes the result of a JSON, merge or strategic merge patch as the patch handler does:
    /// a result that does not decode (a value of the wrong type after a JSON or merge patch, or
    /// unknown fields under `fieldValidation=Strict`) is a 422 on the field `patch`, quoting
    /// `text()`: the patched object as Go marshals it, or a strategic patch as Go prints it.
    fn decode_patched(
        &self,
        req: &ApiRequest,
        patched: &mut Value,
        patch_type: PatchType,
        text: impl Fn() -> String,
    ) -> Result<(), ApiError> {
        let mode = crate::decode::FieldValidation::parse(
            req.query.get("fieldValidation").map(String::as_str),
        )?;
        let invalid = |detail: String| {
            ApiError::invalid(
                "",
                "",
                "",
                &[cause(
                    "FieldValueInvalid",
                    "patch",
                    format!(
                        "Invalid value: {}: {detail}",
                        crate::meta::go_quote(&text())
                    ),
                )],
            )
        };
        let problems = if !self.is_builtin(&req.resource) {
            self.prune_custom(&req.resource, patched)
        } else if patch_type == PatchType::Strategic {
            // The unstructured converter words its type errors otherwise; they stay the 400.
            crate::decode::decode_builtin(&req.resource, None, patched)?
        } else {
            crate::decode::decode_builtin_object(&req.resource, None, patched).map_err(&invalid)?
        };
        match mode {
            _ if problems.0.is_empty() => Ok(()),
            crate::decode::FieldValidation::Strict => Err(invalid(format!(
                "strict decoding error: {}",
                problems.0.join(", ")
            ))),
            crate::decode::FieldValidation::Warn => {
                crate::admission::add_warnings(&problems.0);
                Ok(())
            }
            crate::decode::FieldValidation::Ignore => Ok(()),
        }
    }

    /// Prunes a custom resource against its CRD's structural schema; the fields dropped, as
    /// strict decoding names them (`unknown field "spec.extra"`).
    fn prune_custom(&self, rt: &ResourceType, obj: &mut Value) -> crate::decode::StrictErrors {
        let crds = CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions");
        let crd = self
            .store
            .read()
            .get(&crds, "", &format!("{}.{}", rt.plural, rt.group));
        let Some(crd) = crd.map(|c| c.value()) else {
            return crate::decode::StrictErrors::default();
        };
        let Some(schema) = crate::crd::version_schema(&crd, &rt.version) else {
            return crate::decode::StrictErrors::default();
        };
        crate::decode::StrictErrors(
            crate::crd::prune(schema, obj)
                .iter()
                .map(|path| format!("unknown field {}", crate::meta::go_quote(path)))
                .collect(),
        )
    }

    fn get(&self, req: &ApiRequest) -> Result<Reply, ApiError> {
        let name = req.name.as_deref().unwrap_or("");
        let obj = self.store.read().get(&req.collection(), req.ns(), name);
        match obj {
            Some(o) => Ok(Reply {
                code: 200,
                body: self.present(&req.resource, o.value()),
            }),
            None => Err(ApiError::not_found(&req.resource, name)),
        }
    }

    /// A stored object as `rt` serves it: converted when it is stored as another resource's
    /// (Events), its apiVersion rewritten for the version served (CRDs with several versions
    /// share one collection).
    pub(crate) fn present(&self, rt: &ResourceType, obj: Value) -> Value {
        let mut obj = crate::conversion::from_storage(rt, obj);
        if obj.get("apiVersion").and_then(Value::as_str) != Some(&rt.api_version()) {
            obj["apiVersion"] = json!(rt.api_version());
        }
        obj
    }

    /// The registry's validation of a create (`old` is `None`) or an update: the generic
    /// ObjectMeta checks and the kind's own, in kube-apiserver's order for the kind; the first
    /// that finds anything answers with its 422.
    fn validate_write(
        &self,
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
        name: &str,
    ) -> Result<(), ApiError> {
        let meta = || {
            let metadata = obj.get("metadata").unwrap_or(&Value::Null);
            let write = if old.is_some() {
                MetaWrite::Update
            } else {
                MetaWrite::Create
            };
            let rule = name_rule(&rt.group, &rt.kind, obj);
            let mut causes = validate_object_meta(&rule, rt.namespaced, metadata, write);
            if rt.has_kube_finalizer_rule() {
                causes.extend(validate_kube_finalizer_names(metadata));
            }
            causes
        };
        let kind = || self.validate_kind(rt, obj, old).unwrap_or_default();
        let checks: [&dyn Fn() -> Vec<crate::status::StatusCause>; 2] =
            if crate::validation::judges_kind_first(rt) {
                [&kind, &meta]
            } else {
                [&meta, &kind]
            };
        for check in checks {
            let causes = check();
            if !causes.is_empty() {
                return Err(invalid_object(rt, name, &causes));
            }
        }
        Ok(())
    }

    /// The stored object an update or patch through `rt` starts from: as `rt` serves it, without
    /// the field managers of versions `rt`'s endpoint cannot convert to.
    fn read_for_write(&self, rt: &ResourceType, current: &StoredObject) -> Value {
        let mut obj = self.present(rt, current.value());
        crate::conversion::drop_unconvertible_managers(rt, &mut obj);
        obj
    }

    /// The objects a LIST selects: the list's resourceVersion, the page, and the continue token.
    fn select(&self, req: &ApiRequest) -> Result<ListPage, ApiError> {
        check_list_options(req)?;
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.check_field_selector(&req.resource, &fields)?;
        let fields = crate::conversion::storage_fields(&req.resource, fields);
        let limit: usize = req.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let cont = match req.q("continue") {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let state = self.store.read();
        let list_rv = cont
            .as_ref()
            .map(|c| c.0)
            .unwrap_or(state.resource_version());
        let after = cont.as_ref().map(|c| c.1.clone());
        let mut items = Vec::new();
        let mut next = None;
        let name_fast = fields.required_value("metadata.name");
        for obj in state.list(&req.collection(), req.namespace.as_deref(), after.as_ref()) {
            if let Some(n) = name_fast
                && obj.name != n
            {
                continue;
            }
            if !labels.matches(&obj.labels) || !object_matches_fields(&fields, obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                let last: &Arc<StoredObject> = &items[limit - 1];
                let token = encode_continue(list_rv, &(last.namespace.clone(), last.name.clone()));
                // Like etcd's count, kube-apiserver reports what is left only when nothing
                // filters the list.
                next = Some((token, None));
                break;
            }
            items.push(obj.clone());
        }
        if let Some((_, remaining)) = &mut next
            && labels.is_empty()
            && fields.fields().next().is_none()
            && let Some(last) = items.last()
        {
            let after = (last.namespace.clone(), last.name.clone());
            *remaining = Some(
                state
                    .list(&req.collection(), req.namespace.as_deref(), Some(&after))
                    .count() as u64,
            );
        }
        Ok((list_rv, items, next))
    }

    fn list_head(
        &self,
        req: &ApiRequest,
        list_rv: u64,
        next: Option<(String, Option<u64>)>,
    ) -> Value {
        let mut metadata = Map::new();
        // A custom resource list is an UnstructuredList, whose metadata always has `continue`
        // (empty on the last page), its keys sorted.
        let unstructured = !self.is_builtin(&req.resource);
        if unstructured {
            let c = next.as_ref().map_or("", |(c, _)| c.as_str());
            metadata.insert("continue".into(), json!(c));
        }
        if unstructured && let Some(n) = next.as_ref().and_then(|(_, remaining)| *remaining) {
            metadata.insert("remainingItemCount".into(), json!(n));
        }
        metadata.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if !unstructured && let Some((c, remaining)) = next {
            metadata.insert("continue".into(), json!(c));
            if let Some(n) = remaining {
                metadata.insert("remainingItemCount".into(), json!(n));
            }
        }
        json!({
            "kind": req.resource.list_kind(),
            "apiVersion": req.resource.api_version(),
            "metadata": metadata,
        })
    }

    /// Whether stored objects of this resource may carry another apiVersion (multi-version CRDs).
    fn needs_version_rewrite(&self, rt: &ResourceType) -> bool {
        self.resources()
            .all()
            .filter(|r| r.group == rt.group && r.plural == rt.plural)
            .count()
            > 1
    }

    /// A LIST as a JSON value (for internal callers and non-JSON representations).
    fn list(&self, req: &ApiRequest) -> Result<Reply, ApiError> {
        let (list_rv, objects, next) = self.select(req)?;
        let items: Vec<Value> = objects
            .iter()
            .map(|o| self.present(&req.resource, o.value()))
            .collect();
        let mut items = items;
        self.strip_item_type_meta(&req.resource, &mut items);
        let mut body = self.list_head(req, list_rv, next);
        body["items"] = Value::Array(items);
        Ok(Reply { code: 200, body })
    }

    /// A LIST whose items are the stored JSON bytes, spliced without parsing: the fast path.
    pub(crate) fn list_raw(
        &self,
        req: &ApiRequest,
    ) -> Result<Option<(Value, Vec<Bytes>)>, ApiError> {
        if self.needs_version_rewrite(&req.resource) || crate::conversion::converts(&req.resource) {
            return Ok(None);
        }
        let (list_rv, objects, next) = self.select(req)?;
        let builtin = self.is_builtin(&req.resource);
        let prefix = format!(
            "{{\"apiVersion\":{},\"kind\":{},",
            json!(req.resource.api_version()),
            json!(req.resource.kind)
        );
        let items = objects
            .iter()
            .map(|o| match builtin {
                false => o.json.clone(),
                // Stored JSON starts with its type; anything else is re-encoded without it.
                true if o.json.starts_with(prefix.as_bytes()) => {
                    let mut out = Vec::with_capacity(o.json.len());
                    out.push(b'{');
                    out.extend_from_slice(&o.json[prefix.len()..]);
                    Bytes::from(out)
                }
                true => {
                    let mut v = o.value();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
                }
            })
            .collect();
        Ok(Some((self.list_head(req, list_rv, next), items)))
    }

    /// kube-apiserver encodes the items of a built-in kind's list without apiVersion and kind
    /// (custom resources keep them).
    fn strip_item_type_meta(&self, rt: &ResourceType, items: &mut [Value]) {
        if !self.is_builtin(rt) {
            return;
        }
        for item in items {
            if let Some(m) = item.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
        }
    }

    /// The NamespaceLifecycle admission plugin for a create of `name`: the namespace must exist,
    /// and not be Terminating.
    fn ensure_namespace(&self, req: &ApiRequest, name: &str) -> Result<(), ApiError> {
        if !req.resource.namespaced || !self.options.enforce_namespaces {
            return Ok(());
        }
        let ns = req.ns();
        let namespaces = CollectionKey::new("", "namespaces");
        let Some(namespace) = self.store.read().get(&namespaces, "", ns) else {
            let rt = self.resource("", "v1", "namespaces")?;
            return Err(ApiError::not_found(&rt, ns));
        };
        let terminating = namespace
            .value()
            .pointer("/status/phase")
            .is_some_and(|p| p == "Terminating");
        if terminating && !self.options.allow_writes_in_terminating_namespaces {
            return Err(ApiError::namespace_terminating(&req.resource, name, ns));
        }
        Ok(())
    }

    async fn create(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        if req.subresource.as_deref() == Some(crate::binding::BINDING) {
            return self.bind(req).await;
        }
        if req.subresource.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let rt = &req.resource;
        check_write_options(req, None)?;
        let mut obj = parse_body(req)?;
        check_type_meta(rt, &mut obj)?;
        self.decode_fields(req, &mut obj, true)?;
        if rt.is_review() {
            // The create handler's field manager runs before the review's REST storage answers.
            meta_mut(&mut obj);
            patch::apply::track_update(None, &mut obj, &req.field_manager(), "Update");
            return Ok(Reply {
                code: 201,
                body: crate::reviews::answer(&rt.kind, obj)?,
            });
        }
        if rt.namespaced {
            let body_ns = meta_str(&obj, "namespace").unwrap_or("");
            if !body_ns.is_empty() && body_ns != req.ns() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut obj).insert("namespace".into(), json!(req.ns()));
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            self.ensure_namespace(req, &name)?;
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        self.create_object(req, obj, false).await
    }

    /// The create path shared by POST and apply-creates.
    async fn create_object(
        self: &Arc<Self>,
        req: &ApiRequest,
        mut obj: Value,
        from_apply: bool,
    ) -> Result<Reply, ApiError> {
        let rt = req.resource.clone();
        if rt.has_status
            && !matches!(rt.kind.as_str(), "Node" | "Namespace")
            && rt.group != "apiextensions.k8s.io"
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        apply_defaults(&rt.group, &rt.kind, &mut obj);
        // The field manager records the object as decoded and defaulted: what the strategy and
        // the admission plugins set below belongs to no manager (as in kube-apiserver).
        let sent = obj.clone();
        if rt.group.is_empty() && rt.kind == "Namespace" {
            obj["status"] = json!({"phase": "Active"});
            let spec = obj.get("spec").cloned().unwrap_or(json!({}));
            if spec.get("finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            obj["status"] = crate::crd::established_status(&obj);
        }
        if rt.group == "networking.k8s.io" && rt.kind == "ServiceCIDR" {
            // `ServiceCIDRStatus` is a struct: a new ServiceCIDR shows `status: {}`.
            obj["status"] = json!({});
        }
        if rt.group.is_empty() && rt.kind == "Pod" {
            // The pod strategy's PrepareForCreate: a new pod is Pending with its QoS class.
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        apply_admission_defaults(&rt.group, &rt.kind, &mut obj);
        if rt.group.is_empty() && rt.kind == "Node" {
            crate::defaults::taint_new_node_not_ready(&mut obj);
        }
        if rt.group.is_empty() && rt.kind == "Service" {
            crate::admission::add_warnings(&crate::defaults::service_warnings(&obj));
        }
        let generate_name = meta_str(&obj, "generateName").unwrap_or("").to_string();
        let wants_generated =
            meta_str(&obj, "name").unwrap_or("").is_empty() && !generate_name.is_empty();

        let attrs = AdmissionAttributes {
            operation: Operation::Create,
            resource: rt.clone(),
            namespace: req.ns().to_string(),
            name: meta_str(&obj, "name").unwrap_or("").to_string(),
            subresource: None,
            dry_run: req.dry_run(),
            user_agent: req.user_agent.clone(),
        };
        obj = self.admission.mutate(self, &attrs, obj, None).await?;

        for attempt in 0..8 {
            let mut candidate = obj.clone();
            if wants_generated {
                let name = if generates_suffix(&rt.group, &rt.kind) {
                    format!("{generate_name}{}", names::name_suffix())
                } else {
                    generate_name.clone()
                };
                meta_mut(&mut candidate).insert("name".into(), json!(name));
            }
            let name = meta_str(&candidate, "name").unwrap_or("").to_string();
            self.validate_write(&rt, &candidate, None, &name)?;
            {
                let m = meta_mut(&mut candidate);
                m.insert("uid".into(), json!(names::uid()));
                m.insert("creationTimestamp".into(), json!(names::now_rfc3339()));
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
                if rt.tracks_generation {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
            if !from_apply {
                patch::apply::track_write(
                    None,
                    &sent,
                    &mut candidate,
                    &req.field_manager(),
                    "Update",
                    reset_fields(&rt, req.subresource.as_deref()),
                );
            }
            let attrs = AdmissionAttributes {
                name: name.clone(),
                ..attrs.clone()
            };
            self.admission
                .validate(self, &attrs, &candidate, None)
                .await?;
            if req.dry_run() {
                return Ok(Reply {
                    code: 201,
                    body: candidate,
                });
            }
            match self.commit_put(&rt, &mut candidate, None) {
                Ok(()) => {
                    self.after_write(&rt, &candidate);
                    return Ok(Reply {
                        code: 201,
                        body: candidate,
                    });
                }
                Err(CommitError::AlreadyExists) if wants_generated && attempt < 7 => continue,
                Err(CommitError::AlreadyExists) => {
                    return Err(ApiError::already_exists(&rt, &name));
                }
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Stamps the next resourceVersion into `obj` and stores it. An object stored as another
    /// resource's is converted, and `obj` becomes what its own resource then reads back.
    pub(crate) fn commit_put(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        expected: Option<u64>,
    ) -> Result<(), CommitError> {
        if crate::conversion::converts(rt) {
            let mut stored = crate::conversion::to_storage(rt, std::mem::take(obj));
            let result = self.put_stamped(rt, &mut stored, expected);
            *obj = crate::conversion::from_storage(rt, stored);
            return result;
        }
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Event") => crate::defaults::fill_event_zero_values(obj),
            ("", "Node") => crate::defaults::fill_node_zero_values(obj),
            _ => {}
        }
        self.put_stamped(rt, obj, expected)
    }

    fn put_stamped(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        expected: Option<u64>,
    ) -> Result<(), CommitError> {
        let mut state = self.store.write();
        let rv = state.next_resource_version();
        meta_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
        state.put(&crate::conversion::storage_collection(rt), obj, expected)?;
        Ok(())
    }

    fn commit_remove(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        expected: u64,
    ) -> Result<(), CommitError> {
        let ns = meta_str(obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let mut state = self.store.write();
        let rv = state.next_resource_version();
        meta_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
        // Watchers of the stored resource see the final state in its own form.
        let converted;
        let final_state = if crate::conversion::converts(rt) {
            converted = crate::conversion::to_storage(rt, obj.clone());
            &converted
        } else {
            &*obj
        };
        state.remove(
            &crate::conversion::storage_collection(rt),
            &ns,
            &name,
            final_state,
            expected,
        )?;
        Ok(())
    }

    /// Hooks that react to stored objects of special kinds (CRDs become resources).
    fn after_write(&self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            self.crd_changed(obj);
        }
    }

    fn after_remove(&self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            self.crd_removed(obj);
        }
    }

    fn current(&self, req: &ApiRequest) -> Result<Arc<StoredObject>, ApiError> {
        let name = req.name.as_deref().unwrap_or("");
        self.store
            .read()
            .get(&req.collection(), req.ns(), name)
            .ok_or_else(|| ApiError::not_found(&req.resource, name))
    }

    async fn update(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let rt = &req.resource;
        let name = req.name.clone().unwrap_or_default();
        check_write_options(req, None)?;
        let mut body = parse_body(req)?;
        check_type_meta(rt, &mut body)?;
        self.decode_fields(req, &mut body, true)?;
        let body_name = meta_str(&body, "name").unwrap_or("");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let precondition: Option<u64> = meta_str(&body, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(u64::MAX));
        // A uid in the body is a storage precondition, checked before the resourceVersion.
        let uid_precondition = meta_str(&body, "uid").filter(|s| !s.is_empty());
        for _ in 0..16 {
            let current = self.current(req)?;
            if let Some(uid) = uid_precondition {
                let old = current.value();
                let stored = meta_str(&old, "uid").unwrap_or("");
                if uid != stored {
                    return Err(crate::binding::precondition_failed(
                        rt,
                        &name,
                        &rt.storage_key(req.ns(), &name),
                        "UID",
                        uid,
                        stored,
                    ));
                }
            }
            if let Some(rv) = precondition
                && rv != current.resource_version
            {
                return Err(ApiError::conflict(rt, &name));
            }
            let old = self.read_for_write(rt, &current);
            let new = self.merge_for_write(req, &old, body.clone());
            match self
                .write_update(
                    req,
                    &old,
                    new,
                    current.resource_version,
                    &req.field_manager(),
                    "Update",
                )
                .await
            {
                Err(WriteError::Conflict) if precondition.is_none() => continue,
                Err(WriteError::Conflict) => return Err(ApiError::conflict(rt, &name)),
                Err(WriteError::Api(e)) => return Err(e),
                Ok(reply) => return Ok(reply),
            }
        }
        Err(ApiError::conflict(rt, &name))
    }

    /// Combines a full object sent for the main resource or a subresource with what is stored.
    fn merge_for_write(&self, req: &ApiRequest, old: &Value, mut new: Value) -> Value {
        let rt = &req.resource;
        if req.subresource.as_deref() == Some("status") {
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if out["status"].is_null()
                && let Some(m) = out.as_object_mut()
            {
                m.remove("status");
            }
            return out;
        }
        if rt.has_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let old_meta = meta(old).cloned().unwrap_or_default();
        let m = meta_mut(&mut new);
        for key in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old_meta.get(key) {
                Some(v) => {
                    m.insert(key.into(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
        if !m.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
        new
    }

    /// Validates, admits and stores an update of `old` to `new`; `expected` is the resourceVersion read.
    pub(crate) async fn write_update(
        self: &Arc<Self>,
        req: &ApiRequest,
        old: &Value,
        mut new: Value,
        expected: u64,
        manager: &str,
        operation: &str,
    ) -> Result<Reply, WriteError> {
        let rt = req.resource.clone();
        let name = req.name.clone().unwrap_or_default();
        apply_defaults(&rt.group, &rt.kind, &mut new);
        let sent = new.clone();
        apply_admission_defaults(&rt.group, &rt.kind, &mut new);
        if rt.group.is_empty() && rt.kind == "Namespace" && req.subresource.is_none() {
            // The namespace strategy's PrepareForUpdate: spec.finalizers change only through
            // `/finalize`.
            match old.pointer("/spec/finalizers") {
                Some(f) => {
                    if !new.get("spec").is_some_and(Value::is_object) {
                        new["spec"] = json!({});
                    }
                    new["spec"]["finalizers"] = f.clone();
                }
                None => {
                    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("finalizers");
                    }
                }
            }
        }
        if rt.group.is_empty() && rt.kind == "Service" && req.subresource.is_none() {
            crate::admission::add_warnings(&crate::defaults::service_warnings(&new));
        }
        let attrs = AdmissionAttributes {
            operation: Operation::Update,
            resource: rt.clone(),
            namespace: req.ns().to_string(),
            name: name.clone(),
            subresource: req.subresource.clone(),
            dry_run: req.dry_run(),
            user_agent: req.user_agent.clone(),
        };
        new = self.admission.mutate(self, &attrs, new, Some(old)).await?;
        // Identity fields cannot change through an update.
        meta_mut(&mut new).insert("name".into(), json!(name));
        if rt.namespaced {
            meta_mut(&mut new).insert("namespace".into(), json!(req.ns()));
        }
        self.validate_write(&rt, &new, Some(old), &name)?;
        if let Some(deleting) = meta(old).and_then(|m| m.get("deletionTimestamp")) {
            // Finalizers may only be removed from a deleting object, never added back.
            meta_mut(&mut new).insert("deletionTimestamp".into(), deleting.clone());
        }
        // The EndpointSlice strategy counts a change of labels as a new generation too.
        let labels_count = rt.group == "discovery.k8s.io" && rt.kind == "EndpointSlice";
        let labels_changed =
            labels_count && old.pointer("/metadata/labels") != new.pointer("/metadata/labels");
        if rt.tracks_generation && (spec_part(old) != spec_part(&new) || labels_changed) {
            let generation = meta(old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        if operation != "Apply" {
            patch::apply::track_write(
                Some(old),
                &sent,
                &mut new,
                manager,
                operation,
                reset_fields(&rt, req.subresource.as_deref()),
            );
        }
        if same_content(old, &new) {
            // Nothing changed: no write, no new resourceVersion (as the apiserver short-circuits).
            return Ok(Reply {
                code: 200,
                body: self.present(&rt, old.clone()),
            });
        }
        self.admission
            .validate(self, &attrs, &new, Some(old))
            .await?;
        if req.dry_run() {
            // Nothing is stored, so the object keeps the resourceVersion it was read at.
            let mut answer = new;
            meta_mut(&mut answer).insert("resourceVersion".into(), json!(expected.to_string()));
            return Ok(Reply {
                code: 200,
                body: answer,
            });
        }
        let deleting =
            meta(&new).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()));
        let finalizers_left = meta(&new)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // Graceful deletion still running (a kubelet's pod) or a namespace's own
        // `spec.finalizers` left keep the object (`ShouldDeleteNamespaceDuringUpdate`).
        let grace_running = meta(old)
            .and_then(|m| m.get("deletionGracePeriodSeconds"))
            .and_then(Value::as_i64)
            .is_some_and(|g| g != 0);
        let namespace_waits = rt.group.is_empty()
            && rt.kind == "Namespace"
            && deletion::namespace_spec_finalizers_left(&new);
        if deleting && !finalizers_left && !grace_running && !namespace_waits {
            // The update empties the finalizers of an object being deleted: kube-apiserver does
            // not store it but deletes the object as it is stored (`shouldDeleteDuringUpdate`).
            // Watchers see one DELETED carrying the stored state at the deletion's
            // resourceVersion; the client gets the update it asked for, never stored, at the
            // resourceVersion it was made against.
            let mut final_state = old.clone();
            match self.commit_remove(&rt, &mut final_state, expected) {
                Ok(()) => {}
                Err(CommitError::Conflict) => return Err(WriteError::Conflict),
                Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, &name).into()),
                Err(e) => return Err(ApiError::internal(e.to_string()).into()),
            }
            self.after_remove(&rt, &final_state);
            let mut answer = new;
            meta_mut(&mut answer).insert("resourceVersion".into(), json!(expected.to_string()));
            return Ok(Reply {
                code: 200,
                body: answer,
            });
        }
        let mut stored = new.clone();
        match self.commit_put(&rt, &mut stored, Some(expected)) {
            Ok(()) => {}
            Err(CommitError::Conflict) => return Err(WriteError::Conflict),
            Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, &name).into()),
            Err(e) => return Err(ApiError::internal(e.to_string()).into()),
        }
        self.after_write(&rt, &stored);
        Ok(Reply {
            code: 200,
            body: stored,
        })
    }

    async fn patch(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let rt = req.resource.clone();
        let name = req.name.clone().unwrap_or_default();
        let strategic = rt.group.is_empty() || self.is_builtin(&rt);
        // A content type no PATCH route consumes is refused by go-restful's routing for
        // kube-apiserver's own kinds; custom resources reach the patch handler, which says more.
        let patch_type = PatchType::from_content_type(&req.content_type).ok_or_else(|| {
            if self.is_builtin(&rt) {
                ApiError::unsupported_route_media_type()
            } else {
                ApiError::unsupported_patch_type(strategic)
            }
        })?;
        check_write_options(req, Some(patch_type))?;
        let patch_value: Value = if patch_type == PatchType::Apply {
            serde_saphyr::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        } else {
            serde_json::from_slice(&req.body).map_err(|_| patch::patch_syntax_error(&req.body))?
        };
        if patch_type == PatchType::Apply && !patch_value.is_object() {
            return Err(ApiError::bad_request("apply patches must be a JSON object"));
        }
        let precondition: Option<u64> = patch_value
            .get("metadata")
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(u64::MAX));
        let force = req.query.get("force").is_some_and(|f| f == "true");
        let manager = req.field_manager();
        let strict_decode = crate::decode::FieldValidation::parse(
            req.query.get("fieldValidation").map(String::as_str),
        )? != crate::decode::FieldValidation::Ignore;
        for _ in 0..16 {
            let current = self.store.read().get(&req.collection(), req.ns(), &name);
            let Some(current) = current else {
                if patch_type == PatchType::Apply && req.subresource.is_none() {
                    let mut config = patch_value.clone();
                    check_type_meta(&rt, &mut config)?;
                    let body_name = meta_str(&config, "name").unwrap_or("");
                    if body_name != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({body_name}) does not match the name on the URL ({name})"
                        )));
                    }
                    let applied = patch::apply::server_side_apply(None, &config, &manager, force)?;
                    let mut obj = applied.object;
                    if rt.namespaced {
                        meta_mut(&mut obj).insert("namespace".into(), json!(req.ns()));
                        self.ensure_namespace(req, &name)?;
                    }
                    return self.create_object(req, obj, true).await;
                }
                return Err(ApiError::not_found(&rt, &name));
            };
            if let Some(rv) = precondition
                && rv != current.resource_version
            {
                return Err(ApiError::conflict(&rt, &name));
            }
            let old = self.read_for_write(&rt, &current);
            let patched = match patch_type {
                PatchType::Merge => patch::merge_patch(&old, &patch_value)?,
                PatchType::Json => patch::json_patch(&old, &patch_value, strict_decode)?,
                PatchType::Strategic => {
                    if !strategic {
                        return Err(ApiError::unsupported_patch_type(false));
                    }
                    patch::strategic::strategic_merge_patch(
                        &old,
                        &patch_value,
                        &rt.group,
                        &rt.kind,
                    )?
                }
                PatchType::Apply => {
                    let mut config = patch_value.clone();
                    check_type_meta(&rt, &mut config)?;
                    patch::apply::server_side_apply(Some(&old), &config, &manager, force)?.object
                }
            };
            let mut patched = patched;
            let patched_name = meta_str(&patched, "name").unwrap_or("");
            if patched_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                )));
            }
            if patch_type == PatchType::Apply {
                self.decode_fields(req, &mut patched, false)?;
            } else {
                // What the patch handler quotes of a result that does not decode.
                let as_patched = patched.clone();
                let text = || {
                    let go_order = |v: &Value| {
                        crate::protobuf::go_struct_order(&rt.api_version(), &rt.kind, v)
                    };
                    match patch_type {
                        PatchType::Merge => patch::merge_patch_text(
                            &go_order(&self.present(&rt, old.clone())),
                            &patch_value,
                            &go_order(&as_patched),
                        ),
                        PatchType::Json => {
                            patch::json_patch_text(&patch_value, &go_order(&as_patched))
                        }
                        _ => patch::go_format_v(&patch_value),
                    }
                };
                self.decode_patched(req, &mut patched, patch_type, text)?;
            }
            let merged = self.merge_for_write(req, &old, patched);
            let operation = if patch_type == PatchType::Apply {
                "Apply"
            } else {
                "Update"
            };
            match self
                .write_update(
                    req,
                    &old,
                    merged,
                    current.resource_version,
                    &manager,
                    operation,
                )
                .await
            {
                Err(WriteError::Conflict) if precondition.is_none() => continue,
                Err(WriteError::Conflict) => return Err(ApiError::conflict(&rt, &name)),
                Err(WriteError::Api(e)) => return Err(e),
                Ok(reply) => return Ok(reply),
            }
        }
        Err(ApiError::conflict(&rt, &name))
    }

    /// Rejects a field selector on a field the kind does not index, as kube-apiserver's field
    /// label conversions do (custom resources keep testenv's generic matching).
    pub(crate) fn check_field_selector(
        &self,
        rt: &ResourceType,
        fields: &FieldSelector,
    ) -> Result<(), ApiError> {
        if !self.is_builtin(rt) {
            return Ok(());
        }
        let own: Option<&[&str]> = match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Pod") => Some(&[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ]),
            ("", "Node") => Some(&["metadata.name", "spec.unschedulable"]),
            ("", "Event") => Some(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ]),
            ("", "Namespace") => Some(&["status.phase", "metadata.name"]),
            ("", "Secret") => Some(&["type", "metadata.namespace", "metadata.name"]),
            ("", "Service") => Some(&[
                "metadata.namespace",
                "metadata.name",
                "spec.clusterIP",
                "spec.type",
            ]),
            ("events.k8s.io", "Event") => Some(&[
                "reason",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reportingController",
                "type",
                "metadata.namespace",
                "metadata.name",
            ]),
            _ => None,
        };
        for field in fields.fields() {
            match own {
                Some(list) if !list.contains(&field) => {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {field}"
                    )));
                }
                None if field != "metadata.name" && field != "metadata.namespace" => {
                    return Err(ApiError::bad_request(format!(
                        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        crate::meta::go_quote(field)
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn is_builtin(&self, rt: &ResourceType) -> bool {
        crate::resources::is_builtin_resource(&rt.group, &rt.version, &rt.plural)
    }

    async fn delete(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let options: Value = if req.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let name = req.name.clone().unwrap_or_default();
        let propagation = delete_propagation(&options, req)?;
        let grace: Option<i64> = options
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| req.q("gracePeriodSeconds").and_then(|g| g.parse().ok()));
        let preconditions = options.get("preconditions").cloned().unwrap_or(json!({}));
        let mut req = req.clone();
        if dry_run_in_body(&options) {
            req.query.insert("dryRun".into(), "All".into());
        }
        let req = &req;
        let reply = self
            .delete_object(req, &name, propagation.as_deref(), grace, &preconditions)
            .await?;
        let rt = &req.resource;
        let pending = reply.body.pointer("/metadata/deletionTimestamp").is_some();
        // Pods, Services and Namespaces answer with the deleted object; every other registry
        // with a Status naming it (`finalizeDelete`), unless the object waits for finalizers.
        let returns_object =
            rt.group.is_empty() && matches!(rt.plural.as_str(), "pods" | "services" | "namespaces");
        if pending || returns_object {
            return Ok(reply);
        }
        let mut details = Map::new();
        details.insert("name".into(), json!(name));
        if !rt.group.is_empty() {
            details.insert("group".into(), json!(rt.group));
        }
        details.insert("kind".into(), json!(rt.plural));
        if let Some(uid) = meta_str(&reply.body, "uid") {
            details.insert("uid".into(), json!(uid));
        }
        Ok(Reply {
            code: 200,
            body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}),
        })
    }

    /// Deletes one object with the given propagation and grace period.
    pub(crate) async fn delete_object(
        self: &Arc<Self>,
        req: &ApiRequest,
        name: &str,
        propagation: Option<&str>,
        grace: Option<i64>,
        preconditions: &Value,
    ) -> Result<Reply, ApiError> {
        let rt = req.resource.clone();
        check_propagation_policy(propagation)?;
        for _ in 0..16 {
            let current = self
                .store
                .read()
                .get(&req.collection(), req.ns(), name)
                .ok_or_else(|| ApiError::not_found(&rt, name))?;
            let mut obj = self.present(&rt, current.value());
            check_delete_preconditions(&rt, name, preconditions, &current)?;
            let attrs = AdmissionAttributes {
                operation: Operation::Delete,
                resource: rt.clone(),
                namespace: req.ns().to_string(),
                name: name.to_string(),
                subresource: None,
                dry_run: req.dry_run(),
                user_agent: req.user_agent.clone(),
            };
            // Mutating webhooks see DELETE too (with the old object), as upstream calls them.
            self.admission
                .mutate(self, &attrs, Value::Null, Some(&obj))
                .await?;
            self.admission
                .validate(self, &attrs, &Value::Null, Some(&obj))
                .await?;
            let now = jiff::Timestamp::now();
            let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
            if is_namespace && !current.deleting {
                // The namespace registry's first delete only marks it Terminating; the namespace
                // controller empties it and finalizes it.
                deletion::mark_namespace_terminating(&mut obj, propagation, now);
                if req.dry_run() {
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
                match self.commit_put(&rt, &mut obj, Some(current.resource_version)) {
                    Ok(()) => {
                        return Ok(Reply {
                            code: 200,
                            body: obj,
                        });
                    }
                    Err(CommitError::Conflict) => continue,
                    Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, name)),
                    Err(e) => return Err(ApiError::internal(e.to_string())),
                }
            }
            if is_namespace && deletion::namespace_spec_finalizers_left(&obj) {
                return Ok(Reply {
                    code: 200,
                    body: obj,
                });
            }
            let graceful = if rt.group.is_empty() && rt.kind == "Pod" {
                deletion::before_pod_delete(&mut obj, grace, now)
            } else {
                deletion::PodDeletion::Now
            };
            let period = match graceful {
                deletion::PodDeletion::Pending => {
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
                deletion::PodDeletion::Now => None,
                deletion::PodDeletion::Marked(period) => Some(period),
            };
            let finalizers = finalizers_after_delete(&obj, propagation);
            if period.is_none() && !finalizers.is_empty() {
                // markAsDeleting: waits for its finalizers, with no grace period.
                let m = meta_mut(&mut obj);
                if !current.deleting {
                    if rt.tracks_generation {
                        let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                        m.insert("generation".into(), json!(generation + 1));
                    }
                    m.insert("deletionTimestamp".into(), json!(names::rfc3339_after(0)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                } else if finalizers.len() == current_finalizer_count(&current) {
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
            }
            if !finalizers.is_empty() {
                meta_mut(&mut obj).insert("finalizers".into(), json!(finalizers));
            }
            if period.is_some() || !finalizers.is_empty() {
                // Graceful or finalized: written first (watchers see the mark); the object stays
                // for its finalizers or its kubelet, or goes at once after a grace period of 0.
                if req.dry_run() {
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
                match self.commit_put(&rt, &mut obj, Some(current.resource_version)) {
                    Ok(()) => {}
                    Err(CommitError::Conflict) => continue,
                    Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, name)),
                    Err(e) => return Err(ApiError::internal(e.to_string())),
                }
                if period != Some(0) || !finalizers.is_empty() {
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
                // Removed as marked; the answer carries the removal's resourceVersion.
                let written = meta_str(&obj, "resourceVersion")
                    .and_then(|rv| rv.parse().ok())
                    .unwrap_or(0);
                let mut removed = obj.clone();
                match self.commit_remove(&rt, &mut removed, written) {
                    Ok(()) => self.after_remove(&rt, &removed),
                    // Another writer removed it meanwhile, as upstream tolerates: the answer is
                    // the object as last written.
                    Err(CommitError::NotFound | CommitError::Conflict) => removed = obj,
                    Err(e) => return Err(ApiError::internal(e.to_string())),
                }
                return Ok(Reply {
                    code: 200,
                    body: removed,
                });
            }
            if req.dry_run() {
                return Ok(Reply {
                    code: 200,
                    body: obj,
                });
            }
            match self.commit_remove(&rt, &mut obj, current.resource_version) {
                Ok(()) => {
                    self.after_remove(&rt, &obj);
                    return Ok(Reply {
                        code: 200,
                        body: obj,
                    });
                }
                Err(CommitError::Conflict) => continue,
                Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, name)),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Err(ApiError::conflict(&rt, name))
    }

    async fn delete_collection(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let mut list_req = req.clone();
        list_req.verb = Verb::List;
        list_req.query.remove("limit");
        list_req.query.remove("continue");
        let listed = self.list(&list_req)?;
        let options: Value = if req.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&req.body).unwrap_or(json!({}))
        };
        let propagation = delete_propagation(&options, req)?;
        let grace = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        // As the registry's DeleteCollection: every listed object is deleted, and the answer is
        // the list as it was read.
        let mut deleted = Vec::new();
        for item in listed.body["items"].as_array().cloned().unwrap_or_default() {
            let name = meta_str(&item, "name").unwrap_or("").to_string();
            let ns = meta_str(&item, "namespace").unwrap_or("").to_string();
            let mut one = req.clone();
            one.namespace = if ns.is_empty() { None } else { Some(ns) };
            if dry_run_in_body(&options) {
                one.query.insert("dryRun".into(), "All".into());
            }
            match self
                .delete_object(&one, &name, propagation.as_deref(), grace, &json!({}))
                .await
            {
                Ok(_) => deleted.push(item),
                Err(e) if e.code == 404 => deleted.push(item),
                Err(e) => return Err(e),
            }
        }
        self.strip_item_type_meta(&req.resource, &mut deleted);
        Ok(Reply {
            code: 200,
            body: json!({
                "kind": req.resource.list_kind(),
                "apiVersion": req.resource.api_version(),
                "metadata": {"resourceVersion": self.store.read().resource_version().to_string()},
                "items": deleted,
            }),
        })
    }

    /// Looks up a resource type by group/version/plural.
    pub(crate) fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.resources()
            .get(group, version, plural)
            .ok_or_else(ApiError::path_not_found)
    }
}

fn current_finalizer_count(obj: &StoredObject) -> usize {
    obj.value()
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Evaluates a field selector on a stored object (name and namespace without parsing the JSON).
pub(crate) fn object_matches_fields(fields: &FieldSelector, obj: &StoredObject) -> bool {
    if fields.fields().next().is_none() {
        return true;
    }
    let mut parsed: Option<Value> = None;
    fields.matches(|field| match field {
        "metadata.name" => Some(obj.name.clone()),
        "metadata.namespace" => Some(obj.namespace.clone()),
        other => {
            let v = parsed.get_or_insert_with(|| obj.value());
            let pointer = format!("/{}", other.replace('.', "/"));
            v.pointer(&pointer).map(|x| match x {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
        }
    })
}

/// Why an update did not commit.
pub(crate) enum WriteError {
    /// The object changed since it was read: re-read and retry, or answer 409.
    Conflict,
    /// Any other answer.
    Api(ApiError),
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> Self {
        WriteError::Api(e)
    }
}

/// A continue token in kube-apiserver's format (`storage.continueToken`: version, list
/// resourceVersion and the key to start after, relative to the collection), so that clients
/// see the same kind of token, and a broken one is refused in the same words.
fn encode_continue(rv: u64, key: &(String, String)) -> String {
    use base64::Engine;
    let (namespace, name) = key;
    let start = if namespace.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{namespace}/{name}\u{0}")
    };
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// `storage.DecodeContinue`, with its errors as `ValidateListOptions` reports them.
fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    use base64::Engine;
    let invalid = |detail: String| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid{detail}"
        ))
    };
    // Go's RawURLEncoding ignores the unused bits of the last symbol.
    let go_raw_url = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let raw = go_raw_url.decode(token).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _) => at,
            base64::DecodeError::InvalidLastSymbol { offset, .. } => offset,
            base64::DecodeError::InvalidLength(len) => len,
            base64::DecodeError::InvalidPadding => token.len(),
        };
        invalid(format!(": illegal base64 data at input byte {at}"))
    })?;
    if let Some(error) = gocompat::json::syntax_error(&raw) {
        return Err(invalid(format!(": {error}")));
    }
    let value: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if !value.is_object() && !value.is_null() {
        return Err(invalid(format!(
            ": json: cannot unmarshal {} into Go value of type storage.continueToken",
            gocompat::json::value_kind(&value)
        )));
    }
    let version = value.get("v").and_then(Value::as_str).unwrap_or("");
    if version != "meta.k8s.io/v1" {
        return Err(invalid(format!(
            ": server does not recognize this encoded version {version}"
        )));
    }
    let rv = value.get("rv").and_then(Value::as_u64).unwrap_or(0);
    if rv == 0 {
        return Err(invalid(
            ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
        ));
    }
    let start = value.get("start").and_then(Value::as_str).unwrap_or("");
    if start.is_empty() {
        return Err(invalid(
            ": encoded start key empty (version meta.k8s.io/v1)".into(),
        ));
    }
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    let (namespace, name) = start.split_once('/').unwrap_or(("", start));
    Ok((rv, (namespace.to_string(), name.to_string())))
}

impl ApiServer {
    /// A request made by the server itself (garbage collector, node simulator helpers).
    pub(crate) fn internal_request(
        rt: Arc<ResourceType>,
        verb: Verb,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        user_agent: &str,
    ) -> ApiRequest {
        ApiRequest {
            verb,
            resource: rt,
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            name: Some(name.to_string()),
            subresource: subresource.map(String::from),
            query: HashMap::new(),
            body: Bytes::new(),
            content_type: "application/json".into(),
            user_agent: user_agent.to_string(),
        }
    }

    /// Read-modify-write of one object by the server itself, retried on conflicts.
    pub(crate) async fn internal_update(
        self: &Arc<Self>,
        req: &ApiRequest,
        mutate: impl Fn(&mut Value),
    ) -> Result<(), ApiError> {
        for _ in 0..16 {
            let current = self.current(req)?;
            let old = self.read_for_write(&req.resource, &current);
            let mut new = old.clone();
            mutate(&mut new);
            match self
                .write_update(
                    req,
                    &old,
                    new,
                    current.resource_version,
                    &req.user_agent,
                    "Update",
                )
                .await
            {
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Api(e)) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
        Err(ApiError::conflict(
            &req.resource,
            req.name.as_deref().unwrap_or(""),
        ))
    }
}

/// Whether DeleteOptions in the body ask for a dry run (`dryRun: ["All"]`), as the query may.
fn dry_run_in_body(options: &Value) -> bool {
    options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"))
}

/// The propagation policy a delete asks for: `propagationPolicy` (body, then query), or the
/// legacy `orphanDependents: true`; both at once is refused as `ValidateDeleteOptions` does.
fn delete_propagation(options: &Value, req: &ApiRequest) -> Result<Option<String>, ApiError> {
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.q("propagationPolicy"));
    let orphan = options
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| req.q("orphanDependents").and_then(|v| v.parse().ok()));
    match (policy, orphan) {
        (Some(policy), Some(_)) => Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            &[cause(
                "FieldValueInvalid",
                "propagationPolicy",
                format!(
                    "Invalid value: {}: orphanDependents and deletionPropagation cannot be both set",
                    crate::meta::go_quote(policy)
                ),
            )],
        )),
        (Some(policy), None) => Ok(Some(policy.to_string())),
        (None, Some(true)) => Ok(Some("Orphan".to_string())),
        (None, _) => Ok(None),
    }
}

/// `propagationPolicy` must be one of upstream's three (or unset).
fn check_propagation_policy(propagation: Option<&str>) -> Result<(), ApiError> {
    match propagation {
        None | Some("Orphan" | "Background" | "Foreground") => Ok(()),
        Some(p) => Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            &[cause(
                "FieldValueNotSupported",
                "propagationPolicy",
                format!(
                    "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            )],
        )),
    }
}

/// A delete's `preconditions` (uid, resourceVersion) against the stored object: 409 with
/// upstream's message when one does not hold.
fn check_delete_preconditions(
    rt: &ResourceType,
    name: &str,
    preconditions: &Value,
    current: &crate::store::StoredObject,
) -> Result<(), ApiError> {
    if let Some(uid) = preconditions.get("uid").and_then(Value::as_str)
        && uid != current.uid
    {
        return Err(ApiError::precondition_conflict(
            rt,
            name,
            &format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                current.uid
            ),
        ));
    }
    if let Some(rv) = preconditions.get("resourceVersion").and_then(Value::as_str)
        && rv != current.resource_version.to_string()
    {
        return Err(ApiError::precondition_conflict(
            rt,
            name,
            &format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                current.resource_version
            ),
        ));
    }
    Ok(())
}

/// The object's finalizers plus the one its propagation policy adds (`foregroundDeletion` or
/// `orphan`), which the garbage collector acts on.
fn finalizers_after_delete(obj: &Value, propagation: Option<&str>) -> Vec<String> {
    let mut finalizers: Vec<String> = meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let added = match propagation {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    if let Some(added) = added
        && !finalizers.iter().any(|f| f == added)
    {
        finalizers.push(added.into());
    }
    finalizers
}
