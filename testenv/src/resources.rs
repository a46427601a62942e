//! The resource types testenv serves: the built-in kinds of the contract plus CRDs added at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One servable resource: a kind under a group/version with its REST names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Plural REST name, e.g. `services`.
    pub plural: String,
    /// Singular name, e.g. `service`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `svc`.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Whether a `/status` subresource exists (status is then ignored on main-resource writes).
    pub has_status: bool,
    /// Whether `metadata.generation` is bumped on spec changes.
    pub tracks_generation: bool,
    /// Which subresources are served, for discovery.
    pub subresources: Vec<String>,
}

impl ResourceType {
    /// The object's key in kube-apiserver's etcd (`/registry/<prefix>/<namespace>/<name>`), which
    /// upstream's storage errors quote; `k8s.io/kubernetes/pkg/kubeapiserver`'s special prefixes
    /// for the kinds testenv serves, the plural otherwise.
    pub fn storage_key(&self, namespace: &str, name: &str) -> String {
        let prefix = match (self.group.as_str(), self.plural.as_str()) {
            ("", "endpoints") => "services/endpoints".to_string(),
            ("", "nodes") => "minions".to_string(),
            ("", "services") => "services/specs".to_string(),
            ("", "replicationcontrollers") => "controllers".to_string(),
            ("apiextensions.k8s.io", plural) => format!("apiextensions.k8s.io/{plural}"),
            (group, plural) if !self.is_builtin() => format!("{group}/{plural}"),
            (_, plural) => plural.to_string(),
        };
        if self.namespaced {
            format!("/registry/{prefix}/{namespace}/{name}")
        } else {
            format!("/registry/{prefix}/{name}")
        }
    }

    /// Whether the kind is one of kube-apiserver's own (not a CustomResourceDefinition's).
    pub fn is_builtin(&self) -> bool {
        BUILTINS
            .iter()
            .any(|b| b.group == self.group && b.plural == self.plural)
    }

    /// Whether the kind is a review: created only, answered at once and never stored
    /// (`kubectl auth whoami` and `kubectl auth can-i` send them).
    pub fn is_review(&self) -> bool {
        matches!(
            self.group.as_str(),
            "authentication.k8s.io" | "authorization.k8s.io"
        )
    }

    /// Whether kube-apiserver validates the kind's metadata with `k8s.io/kubernetes`'s core
    /// `ValidateObjectMeta`, which adds a rule to apimachinery's: a finalizer name without a '/'
    /// must be a standard one. CustomResourceDefinitions and custom resources are validated by
    /// apiextensions-apiserver with apimachinery's rules alone.
    pub fn has_kube_finalizer_rule(&self) -> bool {
        self.is_builtin() && self.group != "apiextensions.k8s.io"
    }

    /// `group/version`, or just `version` for the core group: the apiVersion of objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of the list, e.g. `ServiceList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The verbs of subresource `sub`: a pod's Binding is only created, exec is a connect (GET or
    /// POST), a log only read; the others are read and written.
    pub fn subresource_verbs(sub: &str) -> &'static [&'static str] {
        match sub {
            "binding" => &["create"],
            "exec" => &["create", "get"],
            "log" => &["get"],
            _ => &["get", "patch", "update"],
        }
    }

    /// The kind subresource `sub` takes and answers with.
    pub fn subresource_kind(&self, sub: &str) -> String {
        match sub {
            "binding" => "Binding".to_string(),
            "exec" => "PodExecOptions".to_string(),
            crate::scale::SCALE => crate::scale::SCALE_KIND.to_string(),
            _ => self.kind.clone(),
        }
    }

    /// The group and version of subresource `sub`'s kind when it is not the resource's own
    /// (`scale` answers with `autoscaling/v1` Scale).
    pub fn subresource_group_version(&self, sub: &str) -> Option<(&'static str, &'static str)> {
        (sub == crate::scale::SCALE).then_some(crate::scale::SCALE_GROUP_VERSION)
    }

    /// `plural.group` (or just `plural`), the name used in messages such as `services "web" not found`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The URL prefix of this resource's group/version: `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// Identifies a resource type in a URL: group, version and plural name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    /// API group; empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural name.
    pub plural: String,
}

/// The table of servable resources, keyed by group/version/plural.
#[derive(Debug, Clone, Default)]
pub struct ResourceTable {
    by_id: BTreeMap<ResourceId, Arc<ResourceType>>,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    tracks_generation: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &["status"],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status"],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &["binding", "exec", "log", "status"],
        tracks_generation: true,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &["status"],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: true,
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IPAddress",
        plural: "ipaddresses",
        namespaced: false,
        short_names: &["ip"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        kind: "ServiceCIDR",
        plural: "servicecidrs",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &["status"],
        tracks_generation: false,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    },
    Builtin {
        group: "admissionregistration.k8s.io",
        version: "v1",
        kind: "ValidatingWebhookConfiguration",
        plural: "validatingwebhookconfigurations",
        namespaced: false,
        short_names: &[],
        categories: &["api-extensions"],
        subresources: &[],
        tracks_generation: true,
    },
    Builtin {
        group: "admissionregistration.k8s.io",
        version: "v1",
        kind: "MutatingWebhookConfiguration",
        plural: "mutatingwebhookconfigurations",
        namespaced: false,
        short_names: &[],
        categories: &["api-extensions"],
        subresources: &[],
        tracks_generation: true,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        subresources: &["status"],
        tracks_generation: true,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["scale", "status"],
        tracks_generation: true,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["scale", "status"],
        tracks_generation: true,
    },
];

/// Whether `group`/`version`/`plural` is one of the built-in kinds of the contract, without
/// building the table (handlers ask on every request).
pub fn is_builtin_resource(group: &str, version: &str, plural: &str) -> bool {
    BUILTINS
        .iter()
        .any(|b| b.group == group && b.version == version && b.plural == plural)
}

impl ResourceTable {
    /// The built-in kinds of the contract.
    pub fn builtin() -> Self {
        let mut table = Self::default();
        for b in BUILTINS {
            let subresources: Vec<String> = b.subresources.iter().map(|s| s.to_string()).collect();
            table.insert(ResourceType {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                singular: b.kind.to_ascii_lowercase(),
                namespaced: b.namespaced,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                has_status: subresources.iter().any(|s| s == "status"),
                tracks_generation: b.tracks_generation,
                subresources,
            });
        }
        table
    }

    /// Adds or replaces a resource type.
    pub fn insert(&mut self, rt: ResourceType) {
        let id = ResourceId {
            group: rt.group.clone(),
            version: rt.version.clone(),
            plural: rt.plural.clone(),
        };
        self.by_id.insert(id, Arc::new(rt));
    }

    /// Removes every version of `plural.group` (a deleted CRD).
    pub fn remove_group_resource(&mut self, group: &str, plural: &str) {
        self.by_id
            .retain(|id, _| !(id.group == group && id.plural == plural));
    }

    /// Looks up a resource by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.by_id
            .get(&ResourceId {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
            })
            .cloned()
    }

    /// Looks up a resource by apiVersion and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.by_id
            .values()
            .find(|rt| rt.kind == kind && rt.api_version() == api_version)
            .cloned()
    }

    /// The preferred (first) version of a group's resource, by plural.
    pub fn by_collection(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.by_id
            .values()
            .find(|rt| rt.group == group && rt.plural == plural)
            .cloned()
    }

    /// Every resource type, sorted by group, version, plural.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.by_id.values()
    }

    /// The distinct groups with their versions, core first, in a stable order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rt in self.by_id.values() {
            let versions = groups.entry(rt.group.clone()).or_default();
            if !versions.contains(&rt.version) {
                versions.push(rt.version.clone());
            }
        }
        groups.into_iter().collect()
    }
}

/// The verbs every served resource supports, as discovery lists them.
pub(crate) const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The resource types of one group/version, for documents that list them.
pub fn resources_of<'a>(
    table: &'a ResourceTable,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a std::sync::Arc<ResourceType>> + 'a {
    table
        .all()
        .filter(move |rt| rt.group == group && rt.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_check_agrees_with_the_table() {
        let table = ResourceTable::builtin();
        for rt in table.all() {
            assert!(
                is_builtin_resource(&rt.group, &rt.version, &rt.plural),
                "{rt:?}"
            );
        }
        assert!(is_builtin_resource("", "v1", "services"));
        assert!(!is_builtin_resource("", "v2", "services"));
        assert!(!is_builtin_resource("example.com", "v1", "widgets"));
    }

    #[test]
    fn builtin_kinds_resolve_by_path_and_kind() {
        let table = ResourceTable::builtin();
        let svc = table.get("", "v1", "services").expect("services");
        assert_eq!(svc.kind, "Service");
        assert!(svc.namespaced && svc.has_status);
        let slices = table
            .by_kind("discovery.k8s.io/v1", "EndpointSlice")
            .expect("slices");
        assert_eq!(slices.group_version_path(), "/apis/discovery.k8s.io/v1");
        assert_eq!(slices.qualified_plural(), "endpointslices.discovery.k8s.io");
        assert!(table.get("", "v1", "nonsense").is_none());
    }
}
