//! `k8s.io/api/apps/v1` messages (field numbers from its `generated.proto`).

use super::core::POD_TEMPLATE_SPEC;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::schema::*;

/// `appsv1.Deployment`.
pub static DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &DEPLOYMENT_SPEC),
        message(3, "status", &DEPLOYMENT_STATUS),
    ],
};

/// `appsv1.DeploymentSpec`.
pub static DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        int32_ptr(1, "replicas"),
        message_ptr(2, "selector", &LABEL_SELECTOR),
        message(3, "template", &POD_TEMPLATE_SPEC),
        message(4, "strategy", &DEPLOYMENT_STRATEGY),
        int32(5, "minReadySeconds"),
        int32_ptr(6, "revisionHistoryLimit"),
        boolean(7, "paused"),
        int32_ptr(9, "progressDeadlineSeconds"),
    ],
};

/// `appsv1.DeploymentStrategy`.
pub static DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[
        string(1, "type"),
        message_ptr(2, "rollingUpdate", &ROLLING_UPDATE_DEPLOYMENT),
    ],
};

/// `appsv1.RollingUpdateDeployment`.
pub static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "RollingUpdateDeployment",
    fields: &[
        int_or_string_ptr(1, "maxUnavailable"),
        int_or_string_ptr(2, "maxSurge"),
    ],
};

/// `appsv1.DeploymentStatus`.
pub static DEPLOYMENT_STATUS: Message = Message {
    name: "DeploymentStatus",
    fields: &[
        int64(1, "observedGeneration"),
        int32(2, "replicas"),
        int32(3, "updatedReplicas"),
        int32(7, "readyReplicas"),
        int32(4, "availableReplicas"),
        int32(5, "unavailableReplicas"),
        int32_ptr(9, "terminatingReplicas"),
        messages(6, "conditions", &DEPLOYMENT_CONDITION),
        int32_ptr(8, "collisionCount"),
    ],
};

/// `appsv1.DeploymentCondition`.
pub static DEPLOYMENT_CONDITION: Message = Message {
    name: "DeploymentCondition",
    fields: &[
        string_always(1, "type"),
        string_always(2, "status"),
        time(6, "lastUpdateTime"),
        time(7, "lastTransitionTime"),
        string(4, "reason"),
        string(5, "message"),
    ],
};
