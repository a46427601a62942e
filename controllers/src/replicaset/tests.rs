use super::*;

use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn replica_set(replicas: i32) -> ReplicaSet {
    let template_labels = labels(&[("app", "web"), ("pod-template-hash", "775855699b")]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-775855699b".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(template_labels.clone()),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: Some(labels(&[("note", "kept")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "nginx".into(),
                        image: Some("nginx".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

/// A pod named `name` on `node` (empty: unscheduled) in `phase`, ready since `ready` if given.
fn pod(name: &str, node: &str, phase: &str, ready: Option<i64>, created: i64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[
                ("app", "web"),
                ("pod-template-hash", "775855699b"),
            ])),
            creation_timestamp: Some(Time(at(created))),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.to_string()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready.is_some() { "True" } else { "False" }.into(),
                last_transition_time: ready.map(|s| Time(at(s))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[test]
fn missing_pods_are_created_from_the_template_with_a_controller_ref() {
    let rs = replica_set(3);
    let plan = manage_replicas(&rs, &[pod("a", "n1", "Running", Some(0), 0)]);
    assert_eq!(plan.create.len(), 2);
    assert!(plan.delete.is_empty());
    let p = &plan.create[0];
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-775855699b-"));
    assert_eq!(p.metadata.name, None);
    assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("web")
    );
    assert_eq!(
        p.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("note")
            .map(String::as_str),
        Some("kept")
    );
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("apps/v1", "ReplicaSet", "web-775855699b", "rs-uid")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(p.spec.as_ref().unwrap().containers[0].name, "nginx");
}

#[test]
fn inactive_pods_do_not_count() {
    let rs = replica_set(2);
    let mut failed = pod("failed", "n1", "Failed", None, 0);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let mut deleting = pod("deleting", "n1", "Running", Some(0), 0);
    deleting.metadata.deletion_timestamp = Some(Time(at(5)));
    let plan = manage_replicas(
        &rs,
        &[failed, deleting, pod("ok", "n1", "Running", Some(0), 0)],
    );
    assert_eq!(plan.create.len(), 1);
}

#[test]
fn creations_are_capped_by_burst_replicas() {
    let plan = manage_replicas(&replica_set(700), &[]);
    assert_eq!(plan.create.len(), BURST_REPLICAS);
}

#[test]
fn slow_start_doubles_the_batches() {
    assert_eq!(slow_start_batches(0), Vec::<usize>::new());
    assert_eq!(slow_start_batches(1), vec![1]);
    assert_eq!(slow_start_batches(3), vec![1, 2]);
    assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
}

#[test]
fn deletion_follows_upstream_ranking() {
    let rs = replica_set(0);
    let mut costly = pod("costly", "n1", "Running", Some(0), 0);
    costly.metadata.annotations = Some(labels(&[(POD_DELETION_COST_ANNOTATION, "100")]));
    let mut restarted = pod("restarted", "n2", "Running", Some(10), 0);
    restarted.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        name: "c".into(),
        restart_count: 4,
        ..Default::default()
    }]);
    let pods = vec![
        costly,
        pod("running-old-ready", "n3", "Running", Some(10), 0),
        pod("running-new", "n4", "Running", Some(10), 50),
        restarted,
        pod("running-recently-ready", "n5", "Running", Some(40), 0),
        pod("not-ready", "n6", "Running", None, 0),
        pod("unknown", "n7", "Unknown", None, 0),
        pod("pending", "n8", "Pending", None, 0),
        pod("unscheduled", "", "Pending", None, 0),
        // Two on one node: more crowded than every other node.
        pod("crowded-a", "n9", "Running", Some(0), 0),
        pod("crowded-b", "n9", "Running", Some(0), 1),
    ];
    let plan = manage_replicas(&rs, &pods);
    assert_eq!(
        plan.delete,
        vec![
            "unscheduled",
            "pending",
            "unknown",
            "not-ready",
            "crowded-b",
            "crowded-a",
            "running-recently-ready",
            "restarted",
            "running-new",
            "running-old-ready",
            "costly",
        ]
    );
    let partial = manage_replicas(&replica_set(9), &pods);
    assert_eq!(partial.delete, vec!["unscheduled", "pending"]);
}

#[test]
fn status_counts_ready_available_and_labeled_pods() {
    let mut rs = replica_set(4);
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(10);
    let mut relabeled = pod("relabeled", "n1", "Running", Some(0), 0);
    relabeled.metadata.labels = Some(labels(&[("app", "web")]));
    let pods = vec![
        pod("long-ready", "n1", "Running", Some(0), 0),
        pod("just-ready", "n1", "Running", Some(95), 0),
        pod("starting", "n1", "Pending", None, 0),
        relabeled,
    ];
    let status = calculate_status(&rs, &pods, None, at(100));
    assert_eq!(status.replicas, 4);
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.conditions, None);
    assert_eq!(
        availability_recheck(&rs, &pods, at(100)),
        Some(Duration::from_secs(5))
    );
    rs.spec.as_mut().unwrap().min_ready_seconds = None;
    assert_eq!(availability_recheck(&rs, &pods, at(100)), None);
}

#[test]
fn a_failed_create_sets_replica_failure_until_it_succeeds() {
    let mut rs = replica_set(1);
    let failure = ManageFailure {
        reason: "FailedCreate",
        message: "pods \"web-\" is forbidden: exceeded quota".into(),
    };
    let failed = calculate_status(&rs, &[], Some(&failure), at(0));
    let condition = &failed.conditions.as_ref().unwrap()[0];
    assert_eq!(condition.type_, "ReplicaFailure");
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert!(status_changed(&rs, &failed));
    rs.status = Some(failed.clone());
    assert!(!status_changed(
        &rs,
        &calculate_status(&rs, &[], Some(&failure), at(9))
    ));
    let recovered = calculate_status(&rs, &[], None, at(10));
    assert_eq!(recovered.conditions, None);
    assert!(status_changed(&rs, &recovered));
}

#[test]
fn long_names_keep_their_prefix_without_a_dash_only_at_the_limit() {
    assert_eq!(pods_prefix("web"), "web-");
    let long = "a".repeat(253);
    assert_eq!(pods_prefix(&long), long);
}
