use super::*;

use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetCondition, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

fn app_labels() -> BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn pod_template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(app_labels()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// `kubectl create deployment web --image=<image> --replicas=<replicas>` as the API defaults it.
fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            labels: Some(app_labels()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                ..Default::default()
            },
            template: pod_template(image),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::String("25%".into())),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(mut d: Deployment) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

/// The ReplicaSet a sync of `d` created, as the API stores it, at `spec`/`available` replicas.
fn stored(mut rs: ReplicaSet, uid: &str, created: i64, spec: i32, available: i32) -> ReplicaSet {
    rs.metadata.uid = Some(uid.into());
    rs.metadata.creation_timestamp = Some(Time(at(created)));
    rs.metadata.generation = Some(1);
    rs.spec.as_mut().unwrap().replicas = Some(spec);
    rs.status = Some(ReplicaSetStatus {
        replicas: spec,
        ready_replicas: Some(available),
        available_replicas: Some(available),
        observed_generation: Some(1),
        ..Default::default()
    });
    rs
}

fn run(d: &Deployment, replica_sets: &[ReplicaSet], now: i64) -> DeploymentPlan {
    plan(&DeploymentInput {
        deployment: d,
        replica_sets,
        pods: &[],
        now: at(now),
    })
}

fn with_status(mut d: Deployment, plan: &DeploymentPlan) -> Deployment {
    if let Some(status) = &plan.status {
        d.status = Some(status.clone());
    }
    if let Some(revision) = &plan.revision {
        d.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REVISION_ANNOTATION.into(), revision.clone());
    }
    d
}

fn condition_of<'a>(status: &'a DeploymentStatus, type_: &str) -> &'a DeploymentCondition {
    status
        .conditions
        .as_deref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn names(rss: &[ReplicaSet]) -> Vec<(String, i32)> {
    rss.iter()
        .map(|rs| (rs.metadata.name.clone().unwrap(), spec_replicas(rs)))
        .collect()
}

#[test]
fn fenceposts_follow_the_spec_examples() {
    assert_eq!(resolve_fenceposts(&deployment(3, "nginx"), 3), (1, 0));
    assert_eq!(resolve_fenceposts(&deployment(10, "nginx"), 10), (3, 2));
    let mut zero = deployment(3, "nginx");
    zero.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(0)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    assert_eq!(resolve_fenceposts(&zero, 3), (0, 1));
    assert_eq!(max_unavailable(&deployment(0, "nginx")), 0);
    assert_eq!(max_surge(&recreate(deployment(3, "nginx"))), 0);
}

#[test]
fn a_first_rollout_creates_the_replica_set_at_full_size() {
    let d = deployment(3, "nginx");
    let plan = run(&d, &[], 0);
    let rs = plan.create.as_ref().expect("a new ReplicaSet");
    let hash = compute_hash(&d.spec.as_ref().unwrap().template, None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let hashed = |m: &BTreeMap<String, String>| m.get(POD_TEMPLATE_HASH_LABEL).cloned();
    assert_eq!(
        hashed(spec.selector.match_labels.as_ref().unwrap()),
        Some(hash.clone())
    );
    let template_labels = spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(hashed(&template_labels), Some(hash.clone()));
    assert_eq!(rs.metadata.labels.as_ref(), Some(&template_labels));
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Deployment", "d-uid", Some(true))
    );
    assert_eq!(annotation(rs, REVISION_ANNOTATION), Some("1"));
    assert_eq!(annotation(rs, DESIRED_REPLICAS_ANNOTATION), Some("3"));
    assert_eq!(annotation(rs, MAX_REPLICAS_ANNOTATION), Some("4"));
    assert_eq!(plan.revision.as_deref(), Some("1"));
    assert_eq!(
        plan.events,
        vec![PlannedEvent {
            warning: false,
            reason: "ScalingReplicaSet",
            message: format!("Scaled up replica set web-{hash} from 0 to 3"),
        }]
    );
    let status = plan.status.as_ref().unwrap();
    let progressing = condition_of(status, "Progressing");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
    let available = condition_of(status, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("False", Some("MinimumReplicasUnavailable"))
    );
    assert_eq!(
        available.message.as_deref(),
        Some("Deployment does not have minimum availability.")
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.unavailable_replicas, Some(3));
    assert!(plan.update.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
}

#[test]
fn a_settled_rollout_is_complete_and_writes_nothing_more() {
    let d = deployment(3, "nginx");
    let first = run(&d, &[], 0);
    let rs = stored(first.create.clone().unwrap(), "rs1", 0, 3, 3);
    let d = with_status(d, &first);
    let plan = run(&d, std::slice::from_ref(&rs), 5);
    let status = plan.status.as_ref().expect("the rollout completes");
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), Some(0))
    );
    let progressing = condition_of(status, "Progressing");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(
            format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                rs.metadata.name.as_deref().unwrap()
            )
            .as_str()
        )
    );
    // The transition time is kept: Progressing stayed True.
    assert_eq!(progressing.last_transition_time, Some(Time(at(0))));
    assert_eq!(progressing.last_update_time, Some(Time(at(5))));
    let available = condition_of(status, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert!(plan.create.is_none() && plan.update.is_empty() && plan.revision.is_none());
    assert_eq!(plan.requeue_after, None);
    let d = with_status(d, &plan);
    assert_eq!(run(&d, &[rs], 10), DeploymentPlan::default());
}

#[test]
fn a_rolling_update_surges_then_scales_the_old_replica_set_down() {
    let v1 = deployment(3, "nginx");
    let first = run(&v1, &[], 0);
    let old = stored(first.create.clone().unwrap(), "rs1", 0, 3, 3);
    let settled = with_status(v1, &first);
    let settled = with_status(
        settled.clone(),
        &run(&settled, std::slice::from_ref(&old), 1),
    );
    let mut v2 = settled.clone();
    v2.spec.as_mut().unwrap().template = pod_template("nginx:1.28");
    v2.metadata.generation = Some(2);

    // Step 1: the new ReplicaSet at 1 (surge 1), the old one kept (unavailable 0).
    let step1 = run(&v2, std::slice::from_ref(&old), 2);
    let new = step1.create.clone().expect("a new ReplicaSet");
    assert_eq!(spec_replicas(&new), 1);
    assert_eq!(annotation(&new, REVISION_ANNOTATION), Some("2"));
    assert_ne!(new.metadata.name, old.metadata.name);
    assert!(step1.update.is_empty());
    assert_eq!(step1.revision.as_deref(), Some("2"));

    // Step 2: the new pod is available: one old replica can go.
    let new = stored(new, "rs2", 2, 1, 1);
    let v2 = with_status(v2, &step1);
    let step2 = run(&v2, &[old.clone(), new.clone()], 3);
    assert!(step2.create.is_none());
    assert_eq!(
        names(&step2.update),
        vec![(old.metadata.name.clone().unwrap(), 2)]
    );
    assert_eq!(
        step2.events[0].message,
        format!(
            "Scaled down replica set {} from 3 to 2",
            old.metadata.name.as_deref().unwrap()
        )
    );
    let status = step2.status.as_ref().unwrap();
    assert_eq!(
        condition_of(status, "Progressing").reason.as_deref(),
        Some("ReplicaSetUpdated")
    );

    // Step 3: the old ReplicaSet at 2 leaves room for the new one to grow to 2.
    let old = stored(old, "rs1", 0, 2, 2);
    let v2 = with_status(v2, &step2);
    let step3 = run(&v2, &[old.clone(), new.clone()], 4);
    assert_eq!(
        names(&step3.update),
        vec![(new.metadata.name.clone().unwrap(), 2)]
    );
    assert_eq!(
        step3.events[0].message,
        format!(
            "Scaled up replica set {} from 1 to 2",
            new.metadata.name.as_deref().unwrap()
        )
    );
}

#[test]
fn old_replica_sets_with_unavailable_pods_are_cut_first() {
    let d = deployment(10, "nginx:1.28");
    let mut old_d = deployment(10, "nginx");
    old_d.metadata.generation = Some(1);
    let old = stored(run(&old_d, &[], 0).create.unwrap(), "rs1", 0, 10, 6);
    let new = stored(new_replica_set(&d, 3), "rs2", 1, 3, 3);
    // all 13, min available 8, new unavailable 0: up to 5 may go; 4 of them unhealthy first,
    // then available 9 > 8 allows one more.
    let plan = run(&d, &[old.clone(), new.clone()], 2);
    let mut sizes = names(&plan.update);
    sizes.sort();
    // The new ReplicaSet only gets its replicas annotations.
    let mut want = vec![
        (old.metadata.name.clone().unwrap(), 5),
        (new.metadata.name.clone().unwrap(), 3),
    ];
    want.sort();
    assert_eq!(sizes, want);
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_their_pods() {
    let v1 = recreate(deployment(3, "nginx"));
    let old = stored(run(&v1, &[], 0).create.unwrap(), "rs1", 0, 3, 3);
    let mut v2 = v1.clone();
    v2.spec.as_mut().unwrap().template = pod_template("nginx:1.28");

    let step1 = run(&v2, std::slice::from_ref(&old), 1);
    assert!(step1.create.is_none());
    assert_eq!(
        names(&step1.update),
        vec![(old.metadata.name.clone().unwrap(), 0)]
    );

    // Scaled to 0 but a pod is still terminating: no new ReplicaSet yet.
    let mut draining = stored(old.clone(), "rs1", 0, 0, 0);
    draining.status.as_mut().unwrap().replicas = 0;
    let lingering = Pod {
        metadata: ObjectMeta {
            owner_references: draining
                .metadata
                .owner_references
                .clone()
                .map(|_| vec![controller_ref("apps/v1", "ReplicaSet", &draining.metadata)]),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let waiting = plan(&DeploymentInput {
        deployment: &v2,
        replica_sets: std::slice::from_ref(&draining),
        pods: std::slice::from_ref(&lingering),
        now: at(2),
    });
    assert!(waiting.create.is_none() && waiting.update.is_empty());

    let done = run(&v2, std::slice::from_ref(&draining), 3);
    let new = done
        .create
        .expect("the new ReplicaSet once the old pods are gone");
    assert_eq!(spec_replicas(&new), 3);
    assert_eq!(annotation(&new, MAX_REPLICAS_ANNOTATION), Some("3"));
}

#[test]
fn a_rollback_re_promotes_the_old_replica_set_with_its_history() {
    let v1 = deployment(3, "nginx");
    let mut rs1 = stored(run(&v1, &[], 0).create.unwrap(), "rs1", 0, 0, 0);
    rs1.status.as_mut().unwrap().replicas = 0;
    let mut v2 = v1.clone();
    v2.spec.as_mut().unwrap().template = pod_template("nginx:1.28");
    let mut rs2 = stored(
        run(&v2, std::slice::from_ref(&rs1), 1).create.unwrap(),
        "rs2",
        1,
        3,
        3,
    );
    rs2.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION_ANNOTATION.into(), "2".into());
    // kubectl rollout undo: the template of revision 1 again.
    let mut undone = v1.clone();
    undone.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    let plan = run(&undone, &[rs1.clone(), rs2], 2);
    assert!(plan.create.is_none());
    let promoted = &plan.update[0];
    assert_eq!(promoted.metadata.name, rs1.metadata.name);
    assert_eq!(annotation(promoted, REVISION_ANNOTATION), Some("3"));
    assert_eq!(annotation(promoted, REVISION_HISTORY_ANNOTATION), Some("1"));
}

#[test]
fn revision_history_is_appended_and_capped() {
    let d = deployment(1, "nginx");
    let mut rs = new_replica_set(&d, 1);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(REVISION_ANNOTATION.into(), "4".into());
    annotations.insert(REVISION_HISTORY_ANNOTATION.into(), "1,2".into());
    assert!(set_new_replica_set_annotations(&d, &mut rs, 7, true));
    assert_eq!(annotation(&rs, REVISION_HISTORY_ANNOTATION), Some("1,2,4"));
    let long = vec!["9"; 1000].join(",");
    rs.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION_HISTORY_ANNOTATION.into(), long);
    assert!(set_new_replica_set_annotations(&d, &mut rs, 8, true));
    let history = annotation(&rs, REVISION_HISTORY_ANNOTATION).unwrap();
    assert!(
        history.len() <= MAX_REVISION_HISTORY_CHARS && history.ends_with(",7"),
        "{history}"
    );
}

#[test]
fn deployment_annotations_are_copied_but_the_skipped_ones() {
    let mut d = deployment(1, "nginx");
    d.metadata.annotations = Some(
        [
            ("kubernetes.io/change-cause", "kubectl set image"),
            (LAST_APPLIED_ANNOTATION, "{}"),
            (REVISION_ANNOTATION, "9"),
            (DESIRED_REPLICAS_ANNOTATION, "9"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let rs = run(&d, &[], 0).create.unwrap();
    assert_eq!(
        annotation(&rs, "kubernetes.io/change-cause"),
        Some("kubectl set image")
    );
    assert_eq!(annotation(&rs, LAST_APPLIED_ANNOTATION), None);
    assert_eq!(annotation(&rs, REVISION_ANNOTATION), Some("1"));
    assert_eq!(annotation(&rs, DESIRED_REPLICAS_ANNOTATION), Some("1"));
}

#[test]
fn scaling_a_settled_deployment_resizes_its_replica_set() {
    let d = deployment(3, "nginx");
    let rs = stored(run(&d, &[], 0).create.unwrap(), "rs1", 0, 3, 3);
    let mut scaled = d.clone();
    scaled.spec.as_mut().unwrap().replicas = Some(5);
    let plan = run(&scaled, std::slice::from_ref(&rs), 1);
    assert_eq!(
        names(&plan.update),
        vec![(rs.metadata.name.clone().unwrap(), 5)]
    );
    assert_eq!(
        annotation(&plan.update[0], DESIRED_REPLICAS_ANNOTATION),
        Some("5")
    );
    assert_eq!(
        annotation(&plan.update[0], MAX_REPLICAS_ANNOTATION),
        Some("7")
    );
    assert_eq!(
        plan.events[0].message,
        format!(
            "Scaled up replica set {} from 3 to 5",
            rs.metadata.name.as_deref().unwrap()
        )
    );
}

#[test]
fn a_scaling_event_mid_rollout_is_shared_in_proportion() {
    // 10 replicas mid-rollout: old 8 and new 5 (13 = 10 + surge 3), sized for max 13.
    let d10 = deployment(10, "nginx:1.28");
    let mut old_d = deployment(10, "nginx");
    old_d.metadata.uid = d10.metadata.uid.clone();
    let old = stored(run(&old_d, &[], 0).create.unwrap(), "rs1", 0, 8, 8);
    let new = stored(
        run(&d10, std::slice::from_ref(&old), 1).create.unwrap(),
        "rs2",
        1,
        5,
        5,
    );
    assert_eq!(annotation(&old, DESIRED_REPLICAS_ANNOTATION), Some("10"));
    assert_eq!(annotation(&old, MAX_REPLICAS_ANNOTATION), Some("13"));
    // Scale to 20: 20 + 5 surge = 25 = 13 + 12 to share: old 8*25/13 = 15.4 -> +7, new 5*25/13 = 9.6 -> +5.
    let mut d20 = d10.clone();
    d20.spec.as_mut().unwrap().replicas = Some(20);
    let plan = run(&d20, &[old.clone(), new.clone()], 2);
    let mut sizes = names(&plan.update);
    sizes.sort();
    let mut want = vec![
        (old.metadata.name.clone().unwrap(), 15),
        (new.metadata.name.clone().unwrap(), 10),
    ];
    want.sort();
    assert_eq!(sizes, want);
    assert!(
        plan.events.is_empty(),
        "proportional scaling records no events"
    );
}

#[test]
fn old_revisions_beyond_the_limit_are_deleted_oldest_first() {
    let mut d = deployment(1, "v-current");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut rss = Vec::new();
    for (i, image) in ["v1", "v2", "v3"].iter().enumerate() {
        let mut rs = stored(
            new_replica_set(&deployment(1, image), 0),
            &format!("old{i}"),
            i as i64,
            0,
            0,
        );
        rs.metadata.name = Some(format!("web-{image}"));
        rs.metadata.annotations =
            Some([(REVISION_ANNOTATION.to_string(), (i + 1).to_string())].into());
        rs.status.as_mut().unwrap().replicas = 0;
        rss.push(rs);
    }
    let mut current = stored(new_replica_set(&d, 1), "cur", 9, 1, 1);
    current.metadata.annotations = Some(
        [
            (REVISION_ANNOTATION.to_string(), "4".to_string()),
            (DESIRED_REPLICAS_ANNOTATION.to_string(), "1".to_string()),
            (MAX_REPLICAS_ANNOTATION.to_string(), "2".to_string()),
        ]
        .into(),
    );
    rss.push(current);
    let d = Deployment {
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(1),
            ..Default::default()
        }),
        ..d
    };
    let plan = run(&d, &rss, 10);
    assert_eq!(plan.delete, vec!["web-v1", "web-v2"]);
}

#[test]
fn a_paused_deployment_reports_paused_and_does_not_roll_out() {
    let d = deployment(3, "nginx");
    let rs = stored(run(&d, &[], 0).create.unwrap(), "rs1", 0, 3, 3);
    let mut paused = d.clone();
    paused.spec.as_mut().unwrap().paused = Some(true);
    paused.spec.as_mut().unwrap().template = pod_template("nginx:1.28");
    let plan = run(&paused, std::slice::from_ref(&rs), 1);
    assert!(plan.create.is_none() && plan.update.is_empty());
    let progressing = condition_of(plan.status.as_ref().unwrap(), "Progressing");
    assert_eq!(
        (
            progressing.status.as_str(),
            progressing.reason.as_deref(),
            progressing.message.as_deref()
        ),
        (
            "Unknown",
            Some("DeploymentPaused"),
            Some("Deployment is paused")
        )
    );
}

#[test]
fn no_progress_within_the_deadline_times_out() {
    let d = deployment(3, "nginx");
    let first = run(&d, &[], 0);
    let rs = stored(first.create.clone().unwrap(), "rs1", 0, 3, 0);
    let d = with_status(d, &first);
    // The ReplicaSet reports its 3 (unavailable) replicas: progress, at 1.
    let seen = run(&d, std::slice::from_ref(&rs), 1);
    let d = with_status(d, &seen);
    assert_eq!(
        condition_of(&d.status.clone().unwrap(), "Progressing")
            .reason
            .as_deref(),
        Some("ReplicaSetUpdated")
    );
    let stuck = run(&d, std::slice::from_ref(&rs), 602);
    let progressing = condition_of(stuck.status.as_ref().unwrap(), "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(
            format!(
                "ReplicaSet \"{}\" has timed out progressing.",
                rs.metadata.name.as_deref().unwrap()
            )
            .as_str()
        )
    );
    let early = run(&d, std::slice::from_ref(&rs), 100);
    assert_eq!(early.requeue_after, Some(Duration::from_secs(501)));
}

#[test]
fn replica_failure_is_copied_from_the_replica_set() {
    let d = deployment(1, "nginx");
    let first = run(&d, &[], 0);
    let mut rs = stored(first.create.clone().unwrap(), "rs1", 0, 1, 0);
    rs.status.as_mut().unwrap().conditions = Some(vec![ReplicaSetCondition {
        type_: "ReplicaFailure".into(),
        status: "True".into(),
        reason: Some("FailedCreate".into()),
        message: Some("quota".into()),
        last_transition_time: Some(Time(at(1))),
    }]);
    let d = with_status(d, &first);
    let plan = run(&d, &[rs], 2);
    let failure = condition_of(plan.status.as_ref().unwrap(), "ReplicaFailure");
    assert_eq!(
        (failure.reason.as_deref(), failure.message.as_deref()),
        (Some("FailedCreate"), Some("quota"))
    );
}

#[test]
fn an_empty_selector_only_warns() {
    let mut d = deployment(1, "nginx");
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let plan = run(&d, &[], 0);
    assert!(plan.create.is_none());
    assert_eq!(plan.events[0].reason, "SelectingAll");
    assert!(plan.events[0].warning);
    assert_eq!(plan.status.unwrap().observed_generation, Some(1));
}

#[test]
fn templates_match_without_their_hash_label() {
    let d = deployment(1, "nginx");
    let rs = new_replica_set(&d, 1);
    let rs_template = rs.spec.unwrap().template.unwrap();
    assert!(templates_equal_ignoring_hash(
        &d.spec.as_ref().unwrap().template,
        &rs_template
    ));
    assert!(!templates_equal_ignoring_hash(
        &pod_template("nginx:1.28"),
        &rs_template
    ));
    // nil and empty are the same to Go's semantic equality.
    let mut empty_annotations = pod_template("nginx");
    empty_annotations.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
    assert!(templates_equal_ignoring_hash(
        &empty_annotations,
        &pod_template("nginx")
    ));
}

#[test]
fn a_saturated_new_replica_set_empties_the_old_ones_on_a_scaling_event() {
    let d = deployment(3, "nginx:1.28");
    let mut old_d = deployment(3, "nginx");
    old_d.metadata.uid = d.metadata.uid.clone();
    let old = stored(run(&old_d, &[], 0).create.unwrap(), "rs1", 0, 1, 1);
    let mut new = stored(new_replica_set(&d, 3), "rs2", 1, 3, 3);
    new.metadata.annotations = Some(
        [
            (DESIRED_REPLICAS_ANNOTATION.to_string(), "3".to_string()),
            (MAX_REPLICAS_ANNOTATION.to_string(), "4".to_string()),
            (REVISION_ANNOTATION.to_string(), "2".to_string()),
        ]
        .into(),
    );
    // The old ReplicaSet was sized for 4 replicas: a scaling event.
    let mut old = old;
    old.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(DESIRED_REPLICAS_ANNOTATION.into(), "4".into());
    let plan = run(&d, &[old.clone(), new], 2);
    assert_eq!(
        names(&plan.update),
        vec![(old.metadata.name.clone().unwrap(), 0)]
    );
    assert_eq!(
        plan.events[0].message,
        format!(
            "Scaled down replica set {} from 1 to 0",
            old.metadata.name.as_deref().unwrap()
        )
    );
}

#[test]
fn with_no_active_replica_set_a_scaling_event_grows_the_newest() {
    let d = deployment(2, "nginx");
    let mut rs = stored(run(&d, &[], 0).create.unwrap(), "rs1", 0, 0, 0);
    rs.status.as_mut().unwrap().replicas = 0;
    let mut paused = d.clone();
    paused.spec.as_mut().unwrap().paused = Some(true);
    let plan = run(&paused, std::slice::from_ref(&rs), 1);
    assert_eq!(
        names(&plan.update),
        vec![(rs.metadata.name.clone().unwrap(), 2)]
    );
}

#[test]
fn resuming_a_paused_deployment_says_so() {
    let d = deployment(1, "nginx");
    let rs = stored(run(&d, &[], 0).create.unwrap(), "rs1", 0, 1, 1);
    let mut paused = d.clone();
    paused.spec.as_mut().unwrap().paused = Some(true);
    let paused = with_status(paused.clone(), &run(&paused, std::slice::from_ref(&rs), 1));
    let mut resumed = paused.clone();
    resumed.spec.as_mut().unwrap().paused = Some(false);
    let plan = run(&resumed, std::slice::from_ref(&rs), 2);
    let status = plan.status.unwrap();
    // Resumed, then the rollout's own estimate: complete.
    let progressing = condition_of(&status, "Progressing");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let mut no_estimate = resumed.clone();
    no_estimate.spec.as_mut().unwrap().progress_deadline_seconds = None;
    let mut resumed_status = DeploymentStatus::default();
    set_condition(
        &mut resumed_status,
        status::new_condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            at(1),
        ),
    );
    check_paused_conditions(&resumed, &mut resumed_status, at(2));
    let condition = condition_of(&resumed_status, "Progressing");
    assert_eq!(
        (condition.reason.as_deref(), condition.message.as_deref()),
        (Some("DeploymentResumed"), Some("Deployment is resumed"))
    );
    // Without a deadline there is no Progressing condition to maintain.
    let mut untouched = DeploymentStatus::default();
    check_paused_conditions(&no_estimate, &mut untouched, at(2));
    assert_eq!(untouched.conditions, None);
}

#[test]
fn a_deployment_being_deleted_only_updates_its_status() {
    let mut d = deployment(3, "nginx");
    d.metadata.deletion_timestamp = Some(Time(at(0)));
    let plan = run(&d, &[], 1);
    assert!(plan.create.is_none() && plan.update.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.status.unwrap().observed_generation, Some(1));
}

#[test]
fn the_collision_count_changes_the_name_of_the_new_replica_set() {
    let d = deployment(1, "nginx");
    let mut collided = d.clone();
    collided.status = Some(DeploymentStatus {
        collision_count: Some(1),
        ..Default::default()
    });
    let first = run(&d, &[], 0).create.unwrap();
    let second = run(&collided, &[], 0).create.unwrap();
    assert_ne!(first.metadata.name, second.metadata.name);
    let hash = compute_hash(&d.spec.as_ref().unwrap().template, Some(1));
    assert_eq!(second.metadata.name, Some(format!("web-{hash}")));
    // The collision count is kept in the status.
    assert_eq!(
        run(&collided, &[], 0).status.unwrap().collision_count,
        Some(1)
    );
}

#[test]
fn new_replica_set_sizes_follow_the_surge() {
    let d = deployment(10, "nginx");
    let old = stored(
        new_replica_set(&deployment(10, "old"), 10),
        "rs1",
        0,
        10,
        10,
    );
    let new = stored(new_replica_set(&d, 0), "rs2", 1, 0, 0);
    // 10 + surge 3 - 10 in all: the new ReplicaSet may have 3.
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
    let full = stored(new_replica_set(&d, 3), "rs2", 1, 3, 0);
    assert_eq!(
        new_rs_new_replicas(&d, &[&old, &full], &full),
        3,
        "at replicas + surge already"
    );
    assert_eq!(
        new_rs_new_replicas(&recreate(d.clone()), &[&old, &new], &new),
        10
    );
}
