//! A Service create that the allocating webhook admitted (and so claimed a ClusterIP and a
//! NodePort for) and that a later validating webhook then refused: the write never happens and
//! no webhook is told. The repair loop must free both claims once the grace period is over, as
//! upstream's frees an IPAddress whose Service never appeared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator::registry::{
    NodePortAllocation, RegistryConfig, ServiceRegistry, list_ip_addresses,
    list_node_port_allocations,
};
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use controllers::allocation_repair::{AllocationRepair, RepairConfig, RepairMetrics};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use testenv::TestEnv;
use webhook::ServiceRanges;
use webhook::server::tls::generate_certificates;
use webhook::server::{
    AdmissionPolicy, CertificateSource, WebhookConfig, WebhookHandle, WebhookServer, WebhookTarget,
    install_configurations, validating_configuration,
};

fn ranges() -> (ServiceClusterIpRanges, PortRange) {
    (
        ServiceClusterIpRanges::parse("10.96.0.0/24", BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse("30000-30099").unwrap(),
    )
}

async fn serve(
    policy: AdmissionPolicy,
    allocator: Option<ServiceRegistry>,
) -> (WebhookHandle, String) {
    let (ca, cert, key) = generate_certificates(&["127.0.0.1".to_owned()]).unwrap();
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        CertificateSource::Pem { cert, key },
        policy,
    );
    config.allocator = allocator.map(|r| Arc::new(r) as _);
    (WebhookServer::start(config).await.unwrap(), ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_a_create_a_later_webhook_refused_are_freed_after_the_grace_period() {
    let env = TestEnv::start().await.unwrap();
    let (cluster_ips, node_ports) = ranges();
    let registry = ServiceRegistry::start(
        env.client(),
        RegistryConfig::new(cluster_ips.clone(), node_ports),
    )
    .await
    .unwrap();
    let (ours, ours_ca) = serve(AdmissionPolicy::default(), Some(registry)).await;
    install_configurations(
        env.client(),
        ours_ca.as_bytes(),
        &WebhookTarget::Url(format!("https://{}", ours.addr())),
    )
    .await
    .unwrap();
    // A second validating webhook, someone else's policy, that refuses every ClusterIP of the
    // cluster's range: it runs after allocation, as every validating webhook does.
    let narrow = AdmissionPolicy {
        ranges: ServiceRanges {
            cluster_ip: vec!["10.200.0.0/24".parse().unwrap()],
            ..ServiceRanges::default()
        },
        ..AdmissionPolicy::default()
    };
    let (theirs, theirs_ca) = serve(narrow, None).await;
    let mut policy = validating_configuration(
        &WebhookTarget::Url(format!("https://{}", theirs.addr())),
        theirs_ca.as_bytes(),
    );
    policy.metadata.name = Some("someone-elses-policy".into());
    Api::<ValidatingWebhookConfiguration>::all(env.client())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();

    let services: Api<Service> = Api::namespaced(env.client(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "refused"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))
    .unwrap();
    match services.create(&PostParams::default(), &svc).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{}", status.message),
        other => panic!("the later webhook should have refused the create: {other:?}"),
    }
    assert!(services.get_opt("refused").await.unwrap().is_none());
    // What the allocating webhook claimed for it is still there...
    let ips = list_ip_addresses(env.client()).await.unwrap();
    let ports: Vec<NodePortAllocation> = list_node_port_allocations(env.client()).await.unwrap();
    assert_eq!(
        (ips.len(), ports.len()),
        (1, 1),
        "the claims the refused create made"
    );

    // ...until the repair loop's grace period (2 s here, 60 s upstream) is over.
    let mut config = RepairConfig::new(cluster_ips, node_ports);
    config.grace_period = Duration::from_secs(2);
    let repair = tokio::spawn(
        AllocationRepair::new(env.client(), config, RepairMetrics::default())
            .run(controllers::runtime::Shutdown::never()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ips = list_ip_addresses(env.client()).await.unwrap();
        let ports = list_node_port_allocations(env.client()).await.unwrap();
        if ips.is_empty() && ports.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "claims of the refused create were never freed: {} IPAddresses, {} NodePortAllocations",
            ips.len(),
            ports.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    repair.abort();
    ours.shutdown().await;
    theirs.shutdown().await;
}
