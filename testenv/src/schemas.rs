//! The built-in kinds' OpenAPI schemas, from k8s-openapi's `schemars` impls, with the
//! patch-strategy extensions upstream derives from Go struct tags ([`PATCH_METADATA`]): what the
//! OpenAPI documents publish and what strategic merge patches are computed with.

use std::sync::OnceLock;

use k8s_openapi::schemars::{SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

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
        "io.k8s.api.apps.v1.ReplicaSetStatus",
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
        admissionregistration::v1 as admission, apps::v1 as apps,
        authentication::v1 as authentication, authorization::v1 as authorization,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking,
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
        one::<authentication::SelfSubjectReview>(
            g,
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
        ),
        one::<authorization::SelfSubjectAccessReview>(
            g,
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
        ),
        one::<authorization::SelfSubjectRulesReview>(
            g,
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
        ),
        one::<apps::Deployment>(g, "apps", "v1", "Deployment"),
        one::<apps::ReplicaSet>(g, "apps", "v1", "ReplicaSet"),
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
}
