//! Registers the webhook with an API server: the `svcplane-webhook`
//! ValidatingWebhookConfiguration and MutatingWebhookConfiguration, created or updated in place.

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The name of both configurations.
pub const CONFIGURATION_NAME: &str = "svcplane-webhook";
/// The Service validating webhook.
pub const SERVICES_VALIDATING_WEBHOOK: &str = "services.validate.svcplane.io";
/// The endpoints/pods validating webhook.
pub const ENDPOINTS_VALIDATING_WEBHOOK: &str = "endpoints.validate.svcplane.io";
/// The Service mutating (allocating) webhook.
pub const SERVICES_MUTATING_WEBHOOK: &str = "services.mutate.svcplane.io";

/// Where the apiserver reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookTarget {
    /// `clientConfig.url`: a base such as `https://127.0.0.1:8443`; `/validate` and `/mutate`
    /// are appended.
    Url(String),
    /// `clientConfig.service` (in-cluster).
    Service {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The Service's port (443 upstream's default).
        port: u16,
    },
}

impl WebhookTarget {
    fn client_config(&self, path: &str, ca_bundle: &[u8]) -> Value {
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_bundle);
        match self {
            WebhookTarget::Url(base) => {
                json!({"url": format!("{}{path}", base.trim_end_matches('/')), "caBundle": ca})
            }
            WebhookTarget::Service {
                namespace,
                name,
                port,
            } => {
                json!({"service": {"namespace": namespace, "name": name, "port": port, "path": path},
                        "caBundle": ca})
            }
        }
    }
}

fn rule(operations: &[&str], group: &str, version: &str, resources: &[&str]) -> Value {
    json!({"operations": operations, "apiGroups": [group], "apiVersions": [version],
           "resources": resources, "scope": "Namespaced"})
}

/// The ValidatingWebhookConfiguration: Services fail closed (a 422 must not be skipped);
/// Endpoints, EndpointSlices and Pods fail open, because the controllers and kubelets that write
/// them must not stall when the webhook is down.
pub fn validating_configuration(
    target: &WebhookTarget,
    ca_bundle: &[u8],
) -> ValidatingWebhookConfiguration {
    from_json(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app.kubernetes.io/name": "svcplane-webhook"}},
        "webhooks": [
            {
                "name": SERVICES_VALIDATING_WEBHOOK,
                "clientConfig": target.client_config("/validate", ca_bundle),
                "rules": [rule(&["CREATE", "UPDATE"], "", "v1", &["services"])],
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10
            },
            {
                "name": ENDPOINTS_VALIDATING_WEBHOOK,
                "clientConfig": target.client_config("/validate", ca_bundle),
                "rules": [
                    rule(&["CREATE", "UPDATE"], "", "v1", &["endpoints", "pods"]),
                    rule(&["CREATE", "UPDATE"], "discovery.k8s.io", "v1", &["endpointslices"])
                ],
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5
            }
        ]
    }))
}

/// The MutatingWebhookConfiguration: allocation on Service CREATE/UPDATE and release on DELETE.
/// It writes claims, so `NoneOnDryRun`: a dry run claims nothing.
pub fn mutating_configuration(
    target: &WebhookTarget,
    ca_bundle: &[u8],
) -> MutatingWebhookConfiguration {
    from_json(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app.kubernetes.io/name": "svcplane-webhook"}},
        "webhooks": [{
            "name": SERVICES_MUTATING_WEBHOOK,
            "clientConfig": target.client_config("/mutate", ca_bundle),
            "rules": [rule(&["CREATE", "UPDATE", "DELETE"], "", "v1", &["services"])],
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "NoneOnDryRun",
            "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10
        }]
    }))
}

fn from_json<T: DeserializeOwned + Default>(value: Value) -> T {
    // The JSON above is fixed; a mismatch with the API types would be a programming error
    // caught by the unit test, never a runtime input.
    serde_json::from_value(value).unwrap_or_default()
}

async fn create_or_replace<K>(api: &Api<K>, desired: K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => api.create(&PostParams::default(), &desired).await,
        Some(existing) => {
            let mut desired = desired;
            desired.meta_mut().resource_version = existing.meta().resource_version.clone();
            api.replace(&name, &PostParams::default(), &desired).await
        }
    }
}

/// Creates or updates both configurations so that the apiserver calls the webhook at `target`,
/// trusting `ca_bundle` (PEM).
pub async fn install_configurations(
    client: Client,
    ca_bundle: &[u8],
    target: &WebhookTarget,
) -> Result<(), kube::Error> {
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    create_or_replace(&validating, validating_configuration(target, ca_bundle)).await?;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    create_or_replace(&mutating, mutating_configuration(target, ca_bundle)).await?;
    Ok(())
}

/// Removes both configurations (absent ones are fine).
pub async fn uninstall_configurations(client: Client) -> Result<(), kube::Error> {
    let params = kube::api::DeleteParams::default();
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    for result in [
        validating
            .delete(CONFIGURATION_NAME, &params)
            .await
            .map(|_| ()),
        mutating
            .delete(CONFIGURATION_NAME, &params)
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_decode_into_the_api_types() {
        let target = WebhookTarget::Service {
            namespace: "svcplane-system".into(),
            name: "svcplane-webhook".into(),
            port: 443,
        };
        let v = validating_configuration(&target, b"PEM");
        let hooks = v.webhooks.unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].name, SERVICES_VALIDATING_WEBHOOK);
        assert_eq!(hooks[0].side_effects, "None");
        assert_eq!(hooks[0].failure_policy.as_deref(), Some("Fail"));
        let cc = &hooks[0].client_config;
        assert_eq!(cc.ca_bundle.as_ref().unwrap().0, b"PEM");
        assert_eq!(
            cc.service.as_ref().unwrap().path.as_deref(),
            Some("/validate")
        );
        let m = mutating_configuration(
            &WebhookTarget::Url("https://127.0.0.1:9443/".into()),
            b"PEM",
        );
        let hook = &m.webhooks.unwrap()[0];
        assert_eq!(hook.side_effects, "NoneOnDryRun");
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/mutate")
        );
        assert_eq!(m.metadata.name.as_deref(), Some(CONFIGURATION_NAME));
    }
}
