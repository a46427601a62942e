//! `k8s.io/api/authorization/v1` and `authentication/v1` review messages (field numbers from
//! their `generated.proto`): kubectl sends `auth can-i` and `auth whoami` as protobuf.
//! Status fields kubectl never fills (rule lists, extra user info) are refused if present.

use super::meta::OBJECT_META;
use super::schema::*;

/// `authorizationv1.SelfSubjectAccessReview`.
pub static SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &SELF_SUBJECT_ACCESS_REVIEW_SPEC),
        message(3, "status", &SUBJECT_ACCESS_REVIEW_STATUS),
    ],
};

/// `authorizationv1.SelfSubjectAccessReviewSpec`.
static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        message_ptr(1, "resourceAttributes", &RESOURCE_ATTRIBUTES),
        message_ptr(2, "nonResourceAttributes", &NON_RESOURCE_ATTRIBUTES),
    ],
};

/// `authorizationv1.ResourceAttributes`.
static RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        string(1, "namespace"),
        string(2, "verb"),
        string(3, "group"),
        string(4, "version"),
        string(5, "resource"),
        string(6, "subresource"),
        string(7, "name"),
        unsupported(8, "fieldSelector"),
        unsupported(9, "labelSelector"),
    ],
};

/// `authorizationv1.NonResourceAttributes`.
static NON_RESOURCE_ATTRIBUTES: Message = Message {
    name: "NonResourceAttributes",
    fields: &[string(1, "path"), string(2, "verb")],
};

/// `authorizationv1.SubjectAccessReviewStatus` (`allowed` has no `omitempty`).
static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    name: "SubjectAccessReviewStatus",
    fields: &[
        boolean_always(1, "allowed"),
        boolean(4, "denied"),
        string(2, "reason"),
        string(3, "evaluationError"),
    ],
};

/// `authorizationv1.SelfSubjectRulesReview`.
pub static SELF_SUBJECT_RULES_REVIEW: Message = Message {
    name: "SelfSubjectRulesReview",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &SELF_SUBJECT_RULES_REVIEW_SPEC),
        message(3, "status", &SUBJECT_RULES_REVIEW_STATUS),
    ],
};

/// `authorizationv1.SelfSubjectRulesReviewSpec`.
static SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectRulesReviewSpec",
    fields: &[string(1, "namespace")],
};

/// `authorizationv1.SubjectRulesReviewStatus` (the lists and `incomplete` have no `omitempty`).
static SUBJECT_RULES_REVIEW_STATUS: Message = Message {
    name: "SubjectRulesReviewStatus",
    fields: &[
        unsupported(1, "resourceRules"),
        unsupported(2, "nonResourceRules"),
        boolean_always(3, "incomplete"),
        string(4, "evaluationError"),
    ],
};

/// `authenticationv1.SelfSubjectReview`.
pub static SELF_SUBJECT_REVIEW: Message = Message {
    name: "SelfSubjectReview",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "status", &SELF_SUBJECT_REVIEW_STATUS),
    ],
};

/// `authenticationv1.SelfSubjectReviewStatus`.
static SELF_SUBJECT_REVIEW_STATUS: Message = Message {
    name: "SelfSubjectReviewStatus",
    fields: &[message(1, "userInfo", &USER_INFO)],
};

/// `authenticationv1.UserInfo`.
static USER_INFO: Message = Message {
    name: "UserInfo",
    fields: &[
        string(1, "username"),
        string(2, "uid"),
        strings(3, "groups"),
        unsupported(4, "extra"),
    ],
};
