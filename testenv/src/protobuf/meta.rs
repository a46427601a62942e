//! `k8s.io/apimachinery/pkg/apis/meta/v1` messages (field numbers from its `generated.proto`).

use super::schema::*;

/// `metav1.ObjectMeta`.
pub static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        string(1, "name"),
        string(2, "generateName"),
        string(3, "namespace"),
        string(4, "selfLink"),
        string(5, "uid"),
        string(6, "resourceVersion"),
        int64(7, "generation"),
        time(8, "creationTimestamp"),
        time_ptr(9, "deletionTimestamp"),
        int64_ptr(10, "deletionGracePeriodSeconds"),
        string_map(11, "labels"),
        string_map(12, "annotations"),
        messages(13, "ownerReferences", &OWNER_REFERENCE),
        strings(14, "finalizers"),
        messages(17, "managedFields", &MANAGED_FIELDS_ENTRY),
    ],
};

/// `metav1.OwnerReference`.
pub static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        string_always(5, "apiVersion"),
        string_always(1, "kind"),
        string_always(3, "name"),
        string_always(4, "uid"),
        boolean_ptr(6, "controller"),
        boolean_ptr(7, "blockOwnerDeletion"),
    ],
};

/// `metav1.ManagedFieldsEntry`.
pub static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "ManagedFieldsEntry",
    fields: &[
        string(1, "manager"),
        string(2, "operation"),
        string(3, "apiVersion"),
        time_ptr(4, "time"),
        string(6, "fieldsType"),
        fields_v1_ptr(7, "fieldsV1"),
        string(8, "subresource"),
    ],
};

/// `metav1.LabelSelector`.
pub static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        string_map(1, "matchLabels"),
        messages(2, "matchExpressions", &LABEL_SELECTOR_REQUIREMENT),
    ],
};

/// `metav1.LabelSelectorRequirement`.
pub static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[
        string_always(1, "key"),
        string_always(2, "operator"),
        strings(3, "values"),
    ],
};

/// `metav1.Condition`.
pub static CONDITION: Message = Message {
    name: "Condition",
    fields: &[
        string_always(1, "type"),
        string_always(2, "status"),
        int64(3, "observedGeneration"),
        time(4, "lastTransitionTime"),
        string_always(5, "reason"),
        string_always(6, "message"),
    ],
};
