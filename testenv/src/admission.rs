//! The admission chain: in-process steps registered per resource (kube-apiserver's registry
//! work: allocation, defaulting, validation), then mutating and validating webhooks from the
//! stored webhook configurations, called over HTTPS with AdmissionReview v1, with
//! kube-apiserver's matching, failure handling and error texts.

// ApiError is the REST layer's error type everywhere; boxing it only here would buy nothing.
#![allow(clippy::result_large_err)]

pub mod in_process;
pub mod review;
pub mod transport;
pub mod webhooks;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::meta::go_quote;
use crate::resources::ResourceType;
use crate::server::ApiServer;
use crate::status::ApiError;
use crate::store::CollectionKey;
use in_process::InProcessAdmission;
use review::{
    ReviewRequest, calling_error, denial_error, dry_run_unsupported, review_body, verify_response,
};
use transport::{CallTarget, post_review};
use webhooks::{
    FailurePolicy, RequestFacts, Webhook, WebhookTarget, is_exempt, labels_of, webhooks_of,
};

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

impl Operation {
    /// The AdmissionReview name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What is being admitted.
#[derive(Debug, Clone)]
pub struct AdmissionAttributes {
    /// CREATE, UPDATE or DELETE.
    pub operation: Operation,
    /// The resource type.
    pub resource: Arc<ResourceType>,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object (may be empty on create with generateName).
    pub name: String,
    /// Subresource such as `status`.
    pub subresource: Option<String>,
    /// Whether this is a dry run.
    pub dry_run: bool,
    /// The client's User-Agent, reported as the user.
    pub user_agent: String,
}

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// Runs `request` while collecting the warnings webhooks return, for `Warning: 299` headers.
pub async fn collect_warnings<F: Future>(request: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async move {
            let out = request.await;
            let warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
            (out, warnings)
        })
        .await
}

/// Formats one warning as kube-apiserver's `Warning` header value.
pub fn warning_header_value(warning: &str) -> String {
    let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

/// Adds warnings for the `Warning` headers of the request being served.
pub(crate) fn add_warnings(warnings: &[String]) {
    push_warnings(warnings);
}

fn push_warnings(warnings: &[String]) {
    // Outside `collect_warnings` (internal writes) there is nobody to tell.
    let _ = WARNINGS.try_with(|w| w.borrow_mut().extend(warnings.iter().cloned()));
}

/// Which configuration kind a webhook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Mutating,
    Validating,
}

/// Where an in-process step runs: group, plural and subresource ("" for the main resource).
type InProcessKey = (String, String, String);

/// Runs the in-process steps and calls the webhooks registered in the store.
pub struct AdmissionChain {
    services: RwLock<BTreeMap<(String, String, u16), SocketAddr>>,
    /// In-process steps by resource.
    in_process: RwLock<BTreeMap<InProcessKey, Arc<dyn InProcessAdmission>>>,
}

impl AdmissionChain {
    /// A chain with no extra configuration: webhooks come from stored configurations.
    pub fn new() -> Self {
        Self {
            services: RwLock::new(BTreeMap::new()),
            in_process: RwLock::new(BTreeMap::new()),
        }
    }

    /// Runs `step` on every create, update and delete of `group`/`plural` (main resource only),
    /// before the webhooks of each phase, as kube-apiserver's registry does its own kinds.
    pub fn register_in_process(
        &self,
        group: &str,
        plural: &str,
        step: Arc<dyn InProcessAdmission>,
    ) {
        self.register_in_process_subresource(group, plural, "", step);
    }

    /// As [`Self::register_in_process`], for writes of one subresource of `group`/`plural`
    /// (e.g. `status`, which kube-apiserver's registry validates with rules of its own).
    pub fn register_in_process_subresource(
        &self,
        group: &str,
        plural: &str,
        subresource: &str,
        step: Arc<dyn InProcessAdmission>,
    ) {
        self.in_process
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (
                    group.to_string(),
                    plural.to_string(),
                    subresource.to_string(),
                ),
                step,
            );
    }

    fn in_process_step(&self, attrs: &AdmissionAttributes) -> Option<Arc<dyn InProcessAdmission>> {
        let rt = &attrs.resource;
        let subresource = attrs.subresource.clone().unwrap_or_default();
        self.in_process
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(rt.group.clone(), rt.plural.clone(), subresource))
            .cloned()
    }

    /// Runs the in-process step of `attrs`' resource, if one is registered: `Ok(None)` when
    /// none is, else its verified answer. A denial is returned as the step's own Status.
    async fn run_in_process(
        &self,
        phase: Phase,
        attrs: &AdmissionAttributes,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Option<review::ReviewResponse>, ApiError> {
        let Some(step) = self.in_process_step(attrs) else {
            return Ok(None);
        };
        let uid = crate::names::uid();
        let body = review_body(&review_request(attrs, &uid), obj, old);
        let mutating = phase == Phase::Mutating;
        let answer = step.review(mutating, body).await;
        let resp = verify_response(&answer, &uid, mutating).map_err(|e| {
            ApiError::internal(format!(
                "the in-process admission of {} answered wrongly: {e}",
                attrs.resource.plural
            ))
        })?;
        push_warnings(&resp.warnings);
        if !resp.allowed {
            let empty = Value::Object(Default::default());
            let mut err = ApiError::from_status(resp.status.as_ref().unwrap_or(&empty), 400);
            if err.code < 400 {
                err.code = 400;
            }
            return Err(err);
        }
        Ok(Some(resp))
    }

    /// Makes `clientConfig.service` `namespace/name:port` reachable at `addr`.
    pub fn register_service_address(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        addr: SocketAddr,
    ) {
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), name.to_string(), port), addr);
    }

    /// Forgets a registered service address.
    pub fn unregister_service_address(&self, namespace: &str, name: &str, port: u16) {
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), name.to_string(), port));
    }

    fn service_address(&self, namespace: &str, name: &str, port: u16) -> Option<SocketAddr> {
        self.services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_string(), name.to_string(), port))
            .copied()
    }

    /// The webhooks of every configuration of `phase`, configurations ordered by name.
    fn configured(&self, server: &ApiServer, phase: Phase) -> Vec<Webhook> {
        let plural = match phase {
            Phase::Mutating => "mutatingwebhookconfigurations",
            Phase::Validating => "validatingwebhookconfigurations",
        };
        let mut configs: Vec<(String, Value)> = server
            .store
            .read()
            .list(
                &CollectionKey::new("admissionregistration.k8s.io", plural),
                None,
                None,
            )
            .map(|o| (o.name.clone(), o.value()))
            .collect();
        configs.sort_by(|a, b| a.0.cmp(&b.0));
        configs.iter().flat_map(|(_, c)| webhooks_of(c)).collect()
    }

    fn namespace_labels(
        &self,
        server: &ApiServer,
        attrs: &AdmissionAttributes,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> BTreeMap<String, String> {
        let rt = &attrs.resource;
        if rt.group.is_empty() && rt.plural == "namespaces" {
            // A namespace is judged by its own labels.
            return obj.or(old).map(labels_of).unwrap_or_default();
        }
        server
            .store
            .read()
            .get(&CollectionKey::new("", "namespaces"), "", &attrs.namespace)
            .map(|n| n.labels.clone())
            .unwrap_or_default()
    }

    /// Whether `hook` is called for this request (rules, namespaceSelector, objectSelector).
    fn should_call(
        &self,
        server: &ApiServer,
        hook: &Webhook,
        attrs: &AdmissionAttributes,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> bool {
        let rt = &attrs.resource;
        let facts = RequestFacts {
            operation: attrs.operation.as_str(),
            group: &rt.group,
            version: &rt.version,
            resource: &rt.plural,
            subresource: attrs.subresource.as_deref().unwrap_or(""),
            namespace: &attrs.namespace,
        };
        if !hook.rules_match(&facts) {
            return false;
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let namespaced_request = !attrs.namespace.is_empty() || is_namespace;
        if namespaced_request
            && !hook.namespace_selector.is_empty()
            && !hook
                .namespace_selector
                .matches(&self.namespace_labels(server, attrs, obj, old))
        {
            return false;
        }
        hook.object_selected(obj, old)
    }

    /// Sends one review; `Ok(None)` when the call failed under `Ignore`.
    async fn call(
        &self,
        hook: &Webhook,
        phase: Phase,
        attrs: &AdmissionAttributes,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Option<review::ReviewResponse>, ApiError> {
        if attrs.dry_run && !hook.supports_dry_run() {
            return Err(dry_run_unsupported(&hook.name));
        }
        let uid = crate::names::uid();
        let body = review_body(&review_request(attrs, &uid), obj, old);
        let outcome = match self.target(hook) {
            Err(why) => Err(format!("failed to call webhook: {why}")),
            Ok(target) => match post_review(
                &target,
                &hook.ca_bundle,
                serde_json::to_vec(&body).unwrap_or_default(),
                hook.timeout,
            )
            .await
            {
                Err(e) => Err(format!("failed to call webhook: {e}")),
                Ok(answer) => verify_response(&answer, &uid, phase == Phase::Mutating)
                    .map_err(|e| format!("received invalid webhook response: {e}")),
            },
        };
        match outcome {
            Ok(resp) => {
                push_warnings(&resp.warnings);
                if !resp.allowed {
                    return Err(denial_error(&hook.name, resp.status.as_ref()));
                }
                Ok(Some(resp))
            }
            Err(why) => match hook.failure_policy {
                FailurePolicy::Ignore => {
                    tracing::warn!(webhook = %hook.name, error = %why, "failed calling webhook, failing open");
                    Ok(None)
                }
                FailurePolicy::Fail => Err(calling_error(&hook.name, &why)),
            },
        }
    }

    fn target(&self, hook: &Webhook) -> Result<CallTarget, String> {
        match &hook.target {
            WebhookTarget::Url(url) => Ok(CallTarget::url(url, hook.timeout)),
            WebhookTarget::Service {
                namespace,
                name,
                port,
                path,
            } => match self.service_address(namespace, name, *port) {
                Some(addr) => Ok(CallTarget::service(
                    namespace,
                    name,
                    *port,
                    path,
                    addr,
                    hook.timeout,
                )),
                None => Err(format!(
                    "Post \"https://{name}.{namespace}.svc:{port}{path}?timeout={}s\": dial tcp: lookup {name}.{namespace}.svc: no such host",
                    hook.timeout.as_secs()
                )),
            },
            WebhookTarget::Missing => Err("webhook has no clientConfig url or service".into()),
        }
    }

    /// Runs mutating webhooks; returns the possibly patched object.
    pub async fn mutate(
        &self,
        server: &ApiServer,
        attrs: &AdmissionAttributes,
        obj: Value,
        old: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut obj = obj;
        let own = (!obj.is_null()).then_some(&obj);
        if let Some(resp) = self
            .run_in_process(Phase::Mutating, attrs, own, old)
            .await?
            && let Some(patch) = resp.patch
        {
            obj = apply_patch(
                &obj,
                patch,
                &format!("the in-process admission of {}", attrs.resource.plural),
            )?;
        }
        if is_exempt(&attrs.resource.group) {
            return Ok(obj);
        }
        let hooks = self.configured(server, Phase::Mutating);
        if hooks.is_empty() {
            return Ok(obj);
        }
        // Count object changes; a hook is reinvoked (once) if the object changed after it ran.
        let mut changes = 0usize;
        let mut seen_at: Vec<Option<usize>> = vec![None; hooks.len()];
        for (i, hook) in hooks.iter().enumerate() {
            if let Some(changed) = self.mutate_once(server, hook, attrs, &mut obj, old).await? {
                changes += usize::from(changed);
                seen_at[i] = Some(changes);
            }
        }
        for (i, hook) in hooks.iter().enumerate() {
            let stale = seen_at[i].is_some_and(|at| at < changes);
            if hook.reinvoke_if_needed && stale {
                let changed = self.mutate_once(server, hook, attrs, &mut obj, old).await?;
                changes += usize::from(changed == Some(true));
            }
        }
        Ok(obj)
    }

    /// Calls one mutating webhook if it matches: `None` if it was not called, else whether it
    /// changed the object.
    async fn mutate_once(
        &self,
        server: &ApiServer,
        hook: &Webhook,
        attrs: &AdmissionAttributes,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<Option<bool>, ApiError> {
        if !self.should_call(server, hook, attrs, Some(obj), old) {
            return Ok(None);
        }
        let Some(resp) = self
            .call(hook, Phase::Mutating, attrs, Some(obj), old)
            .await?
        else {
            return Ok(Some(false));
        };
        let Some(patch) = resp.patch else {
            return Ok(Some(false));
        };
        let patched = apply_patch(
            obj,
            patch,
            &format!("admission webhook {}", go_quote(&hook.name)),
        )?;
        let changed = patched != *obj;
        *obj = patched;
        Ok(Some(changed))
    }

    /// Runs validating webhooks; any denial fails the request.
    pub async fn validate(
        &self,
        server: &ApiServer,
        attrs: &AdmissionAttributes,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let obj = (!obj.is_null()).then_some(obj);
        self.run_in_process(Phase::Validating, attrs, obj, old)
            .await?;
        if is_exempt(&attrs.resource.group) {
            return Ok(());
        }
        let hooks = self.configured(server, Phase::Validating);
        let calls = hooks
            .iter()
            .filter(|h| self.should_call(server, h, attrs, obj, old))
            .map(|h| self.call(h, Phase::Validating, attrs, obj, old));
        // All run at once, as upstream's validating dispatcher; the first failure in
        // configuration order is reported so that answers are deterministic.
        for outcome in futures::future::join_all(calls).await {
            outcome?;
        }
        Ok(())
    }
}

/// The review's request fields for `attrs`.
fn review_request<'a>(attrs: &'a AdmissionAttributes, uid: &'a str) -> ReviewRequest<'a> {
    let rt = &attrs.resource;
    ReviewRequest {
        uid,
        group: &rt.group,
        version: &rt.version,
        kind: &rt.kind,
        resource: &rt.plural,
        subresource: attrs.subresource.as_deref().unwrap_or(""),
        name: &attrs.name,
        namespace: &attrs.namespace,
        operation: attrs.operation.as_str(),
        username: match attrs.user_agent.as_str() {
            "" => "system:admin",
            ua => ua,
        },
        dry_run: attrs.dry_run,
    }
}

/// `obj` with the JSON Patch `patch` (from `who`) applied.
fn apply_patch(obj: &Value, patch: Value, who: &str) -> Result<Value, ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| ApiError::internal(format!("{who} returned an invalid JSON patch: {e}")))?;
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &ops).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(patched)
}

impl Default for AdmissionChain {
    fn default() -> Self {
        Self::new()
    }
}
