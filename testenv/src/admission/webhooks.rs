//! Webhooks as the stored Mutating/ValidatingWebhookConfigurations describe them, with v1
//! defaults, and the rules, namespaceSelector and objectSelector that decide which requests
//! each webhook sees (upstream's `rules.Matcher` and `namespace`/`object` matchers).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

/// Where a webhook is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookTarget {
    /// `clientConfig.url`.
    Url(String),
    /// `clientConfig.service`: resolved through the chain's registered addresses.
    Service {
        /// Service namespace.
        namespace: String,
        /// Service name.
        name: String,
        /// Port, 443 by default.
        port: u16,
        /// Path, `/` by default.
        path: String,
    },
    /// No usable clientConfig: every call fails (and failurePolicy decides).
    Missing,
}

/// What to do when a webhook cannot be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Reject the request with 500.
    Fail,
    /// Carry on as if the webhook allowed it.
    Ignore,
}

/// One `rules[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// CREATE, UPDATE, DELETE, CONNECT or `*`.
    pub operations: Vec<String>,
    /// API groups or `*`.
    pub api_groups: Vec<String>,
    /// API versions or `*`.
    pub api_versions: Vec<String>,
    /// `services`, `services/status`, `*`, `*/status`, `services/*`, `*/*`.
    pub resources: Vec<String>,
    /// `Namespaced`, `Cluster` or `*`.
    pub scope: String,
}

/// A `matchLabels` + `matchExpressions` selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectLabelSelector {
    match_labels: BTreeMap<String, String>,
    expressions: Vec<(String, String, Vec<String>)>,
}

impl ObjectLabelSelector {
    /// Parses a `metav1.LabelSelector`; absent or null is the empty selector.
    pub fn from_json(v: Option<&Value>) -> Self {
        let Some(v) = v.filter(|v| v.is_object()) else {
            return Self::default();
        };
        let match_labels = v
            .get("matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let expressions = v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| {
                        let s =
                            |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                        let values = e
                            .get("values")
                            .and_then(Value::as_array)
                            .map(|vs| {
                                vs.iter()
                                    .filter_map(|v| v.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (s("key"), s("operator"), values)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            match_labels,
            expressions,
        }
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.expressions.is_empty()
    }

    /// Whether `labels` satisfy every requirement (an unknown operator matches nothing).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(key, op, values)| {
                let have = labels.get(key);
                match op.as_str() {
                    "In" => have.is_some_and(|h| values.contains(h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    }
}

/// One webhook of a configuration, with v1 defaults applied.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `webhooks[].name`, as messages name it.
    pub name: String,
    /// Where to send the review.
    pub target: WebhookTarget,
    /// The PEM bundle to trust (decoded `caBundle`).
    pub ca_bundle: Vec<u8>,
    /// Which requests it sees.
    pub rules: Vec<Rule>,
    /// Fail (default) or Ignore.
    pub failure_policy: FailurePolicy,
    /// Equivalent (default) or Exact.
    pub exact_match: bool,
    /// Namespaces whose labels match (empty: all).
    pub namespace_selector: ObjectLabelSelector,
    /// Objects whose labels match (empty: all).
    pub object_selector: ObjectLabelSelector,
    /// `None`, `NoneOnDryRun`, `Some`, `Unknown`.
    pub side_effects: String,
    /// `timeoutSeconds`, 10 by default.
    pub timeout: Duration,
    /// Mutating only: `reinvocationPolicy: IfNeeded`.
    pub reinvoke_if_needed: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The webhooks of one stored configuration, in order.
pub fn webhooks_of(configuration: &Value) -> Vec<Webhook> {
    let Some(hooks) = configuration.get("webhooks").and_then(Value::as_array) else {
        return Vec::new();
    };
    hooks.iter().map(parse_webhook).collect()
}

fn parse_webhook(w: &Value) -> Webhook {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let client = w.get("clientConfig");
    let target = match (
        client.and_then(|c| c.get("url")).and_then(Value::as_str),
        client
            .and_then(|c| c.get("service"))
            .filter(|s| s.is_object()),
    ) {
        (Some(url), _) if !url.is_empty() => WebhookTarget::Url(url.to_string()),
        (_, Some(svc)) => WebhookTarget::Service {
            namespace: s(svc.get("namespace")),
            name: s(svc.get("name")),
            port: svc
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(443),
            path: match s(svc.get("path")) {
                p if p.is_empty() => "/".to_string(),
                p => p,
            },
        },
        _ => WebhookTarget::Missing,
    };
    // caBundle is []byte, so JSON carries it as base64; tolerate a raw PEM too.
    let raw_ca = s(client.and_then(|c| c.get("caBundle")));
    let ca_bundle = base64::engine::general_purpose::STANDARD
        .decode(raw_ca.trim())
        .unwrap_or_else(|_| raw_ca.into_bytes());
    let rules = w
        .get("rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| Rule {
                    operations: strings(r.get("operations")),
                    api_groups: strings(r.get("apiGroups")),
                    api_versions: strings(r.get("apiVersions")),
                    resources: strings(r.get("resources")),
                    scope: match s(r.get("scope")) {
                        sc if sc.is_empty() => "*".to_string(),
                        sc => sc,
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Webhook {
        name: s(w.get("name")),
        target,
        ca_bundle,
        rules,
        failure_policy: match w.get("failurePolicy").and_then(Value::as_str) {
            Some("Ignore") => FailurePolicy::Ignore,
            _ => FailurePolicy::Fail,
        },
        exact_match: w.get("matchPolicy").and_then(Value::as_str) == Some("Exact"),
        namespace_selector: ObjectLabelSelector::from_json(w.get("namespaceSelector")),
        object_selector: ObjectLabelSelector::from_json(w.get("objectSelector")),
        side_effects: s(w.get("sideEffects")),
        timeout: Duration::from_secs(
            w.get("timeoutSeconds")
                .and_then(Value::as_u64)
                .filter(|t| *t > 0)
                .unwrap_or(10)
                .min(30),
        ),
        reinvoke_if_needed: w.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded"),
    }
}

/// The request facts rules are matched against.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: &'a str,
    /// API group.
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Subresource, empty for the main resource.
    pub subresource: &'a str,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: &'a str,
}

impl RequestFacts<'_> {
    fn is_namespace_object(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }
}

fn listed(values: &[String], want: &str) -> bool {
    values.iter().any(|v| v == "*" || v == want)
}

impl Rule {
    /// Whether this rule covers the request (`exact`: versions must match as well).
    pub fn matches(&self, r: &RequestFacts<'_>, exact: bool) -> bool {
        let scope = match self.scope.as_str() {
            "*" => true,
            "Namespaced" => !r.is_namespace_object() && !r.namespace.is_empty(),
            "Cluster" => r.is_namespace_object() || r.namespace.is_empty(),
            _ => false,
        };
        // testenv serves one stored version per resource, so under the Equivalent policy a rule
        // naming another version of the same group and resource still covers it.
        let version = !exact || listed(&self.api_versions, r.version);
        let resource = self.resources.iter().any(|res| {
            let (res, sub) = res.split_once('/').unwrap_or((res.as_str(), ""));
            (res == "*" || res == r.resource) && (sub == "*" || sub == r.subresource)
        });
        scope
            && listed(&self.operations, r.operation)
            && listed(&self.api_groups, r.group)
            && version
            && resource
    }
}

impl Webhook {
    /// Whether any rule covers the request.
    pub fn rules_match(&self, r: &RequestFacts<'_>) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.matches(r, self.exact_match))
    }

    /// `objectSelector` on the new or the old object.
    pub fn object_selected(&self, obj: Option<&Value>, old: Option<&Value>) -> bool {
        if self.object_selector.is_empty() {
            return true;
        }
        [obj, old]
            .into_iter()
            .flatten()
            .any(|o| o.is_object() && self.object_selector.matches(&labels_of(o)))
    }

    /// Whether the webhook may see a dry-run request.
    pub fn supports_dry_run(&self) -> bool {
        matches!(self.side_effects.as_str(), "None" | "NoneOnDryRun")
    }
}

/// `metadata.labels` as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Resources no webhook may intercept, so a broken webhook cannot lock its own configuration.
pub fn is_exempt(group: &str) -> bool {
    group == "admissionregistration.k8s.io"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(op: &'a str, resource: &'a str, sub: &'a str, ns: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            operation: op,
            group: "",
            version: "v1",
            resource,
            subresource: sub,
            namespace: ns,
        }
    }

    #[test]
    fn defaults_follow_admissionregistration_v1() {
        let hooks = webhooks_of(&json!({"webhooks": [{
            "name": "a.example.com",
            "clientConfig": {"service": {"namespace": "ns", "name": "svc"}, "caBundle": "UEVN"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"]}]
        }]}));
        let h = &hooks[0];
        assert_eq!(h.timeout, Duration::from_secs(10));
        assert_eq!(h.failure_policy, FailurePolicy::Fail);
        assert!(!h.exact_match && !h.reinvoke_if_needed);
        assert_eq!(h.rules[0].scope, "*");
        assert_eq!(h.ca_bundle, b"PEM");
        assert_eq!(
            h.target,
            WebhookTarget::Service {
                namespace: "ns".into(),
                name: "svc".into(),
                port: 443,
                path: "/".into()
            }
        );
    }

    #[test]
    fn rules_match_operations_resources_subresources_and_scope() {
        let rule = |ops: &[&str], res: &[&str], scope: &str| Rule {
            operations: ops.iter().map(|s| s.to_string()).collect(),
            api_groups: vec!["".into()],
            api_versions: vec!["v1".into()],
            resources: res.iter().map(|s| s.to_string()).collect(),
            scope: scope.into(),
        };
        let create_svc = facts("CREATE", "services", "", "default");
        assert!(rule(&["CREATE"], &["services"], "*").matches(&create_svc, true));
        assert!(rule(&["*"], &["*"], "Namespaced").matches(&create_svc, true));
        assert!(!rule(&["UPDATE"], &["services"], "*").matches(&create_svc, true));
        assert!(!rule(&["CREATE"], &["services"], "Cluster").matches(&create_svc, true));
        let status = facts("UPDATE", "services", "status", "default");
        assert!(!rule(&["UPDATE"], &["services"], "*").matches(&status, true));
        assert!(rule(&["UPDATE"], &["services/status"], "*").matches(&status, true));
        assert!(rule(&["UPDATE"], &["*/status"], "*").matches(&status, true));
        assert!(rule(&["UPDATE"], &["*/*"], "*").matches(&status, true));
        let ns = facts("CREATE", "namespaces", "", "team");
        assert!(rule(&["CREATE"], &["namespaces"], "Cluster").matches(&ns, true));
        assert!(!rule(&["CREATE"], &["namespaces"], "Namespaced").matches(&ns, true));
        let mut v2 = rule(&["CREATE"], &["services"], "*");
        v2.api_versions = vec!["v2".into()];
        assert!(!v2.matches(&create_svc, true));
        assert!(v2.matches(&create_svc, false));
    }

    #[test]
    fn label_selectors_support_every_operator() {
        let sel = ObjectLabelSelector::from_json(Some(&json!({
            "matchLabels": {"team": "a"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "skip", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "NotIn", "values": ["db"]}
            ]
        })));
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(sel.matches(&labels(&[("team", "a"), ("env", "dev")])));
        assert!(!sel.matches(&labels(&[("team", "a"), ("env", "qa")])));
        assert!(!sel.matches(&labels(&[("team", "a"), ("env", "dev"), ("skip", "")])));
        assert!(!sel.matches(&labels(&[("team", "a"), ("env", "dev"), ("tier", "db")])));
        let bad = ObjectLabelSelector::from_json(Some(
            &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
        ));
        assert!(!bad.matches(&labels(&[("a", "b")])));
        assert!(ObjectLabelSelector::from_json(None).matches(&BTreeMap::new()));
    }

    #[test]
    fn object_selector_looks_at_new_then_old() {
        let hooks = webhooks_of(
            &json!({"webhooks": [{"name": "h", "objectSelector": {"matchLabels": {"x": "y"}}}]}),
        );
        let with = json!({"metadata": {"labels": {"x": "y"}}});
        let without = json!({"metadata": {}});
        assert!(hooks[0].object_selected(Some(&without), Some(&with)));
        assert!(!hooks[0].object_selected(Some(&without), None));
        assert!(!hooks[0].object_selected(Some(&Value::Null), None));
    }
}
