//! What several webhook envtests share: testenv with the registry of record behind the webhook,
//! installed as `svcplane up` installs it.

use std::sync::Arc;

use allocator::registry::{RegistryConfig, ServiceRegistry};
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use testenv::TestEnv;
use webhook::server::{
    AdmissionPolicy, CertificateSource, ServiceClusterIpIndex, WebhookConfig, WebhookHandle,
    WebhookServer, WebhookTarget, install_configurations,
};

/// testenv, the allocator registry of record (`10.96.0.0/12`, `30000-32767`) and the webhook
/// allocating through it.
pub struct RegistryBackedWebhook {
    pub env: TestEnv,
    pub server: WebhookHandle,
}

impl RegistryBackedWebhook {
    pub async fn start() -> Self {
        let env = TestEnv::start().await.unwrap();
        let registry = ServiceRegistry::start(
            env.client(),
            RegistryConfig::new(
                ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced).unwrap(),
                PortRange::parse("30000-32767").unwrap(),
            ),
        )
        .await
        .unwrap();
        let (ca, cert, key) =
            webhook::server::tls::generate_certificates(&["127.0.0.1".to_owned()]).unwrap();
        let mut config = WebhookConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            CertificateSource::Pem { cert, key },
            AdmissionPolicy::default(),
        );
        config.allocator = Some(Arc::new(registry));
        config.services = Some(Arc::new(ServiceClusterIpIndex::start(env.client())));
        let server = WebhookServer::start(config).await.unwrap();
        install_configurations(
            env.client(),
            ca.as_bytes(),
            &WebhookTarget::Url(format!("https://{}", server.addr())),
        )
        .await
        .unwrap();
        RegistryBackedWebhook { env, server }
    }
}
