//! The review kinds `kubectl auth whoami` and `kubectl auth can-i` create: answered at once and
//! never stored (k/k `pkg/registry/authentication/selfsubjectreview`,
//! `pkg/registry/authorization/selfsubject{access,rules}review`).
//!
//! testenv authenticates nobody and authorizes everything, so every caller is the cluster's
//! administrator: the identity the real control plane of the test suite gives its admin client
//! (user `admin` in `system:masters`), and an authorizer that allows all, as kube-apiserver's
//! privileged-group authorizer answers for `system:masters` (allowed, no reason).

use serde_json::{Value, json};

use crate::status::{ApiError, StatusCause, cause};

/// The user every request is taken to come from.
pub const USERNAME: &str = "admin";
/// Its groups, as kube-apiserver lists them after authentication.
pub const GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

/// The review `review` (of `kind`) with its status filled in, or the 422 its registry answers.
pub fn answer(kind: &str, mut review: Value) -> Result<Value, ApiError> {
    let status = match kind {
        "SelfSubjectReview" => json!({"userInfo": {"username": USERNAME, "groups": GROUPS}}),
        "SelfSubjectAccessReview" => {
            let causes = access_review_causes(&review);
            if !causes.is_empty() {
                // The registry names the kind from the decoded object's TypeMeta, which decoding
                // into the internal type has emptied: upstream's message starts ".authorization…".
                return Err(ApiError::invalid("", "authorization.k8s.io", "", &causes));
            }
            json!({"allowed": true})
        }
        // What kube-apiserver's RBAC resolver lists for the user: the rules of the bootstrap
        // roles bound to its groups (cluster-admin to system:masters; system:basic-user,
        // system:discovery and system:public-info-viewer to system:authenticated). RBAC visits
        // the bindings in its cache's order; kubectl sorts what it prints.
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"]},
            ],
            "nonResourceRules": [
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
                {"verbs": ["get"], "nonResourceURLs":
                    ["/healthz", "/livez", "/readyz", "/version", "/version/"]},
                {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                    "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version",
                    "/version/"]},
            ],
            "incomplete": false,
        }),
        _ => return Err(ApiError::internal(format!("{kind} is not a review kind"))),
    };
    if let Some(object) = review.as_object_mut() {
        object.insert("status".into(), status);
    }
    Ok(review)
}

/// `ValidateSelfSubjectAccessReviewSpec`: exactly one of the two kinds of attributes.
fn access_review_causes(review: &Value) -> Vec<StatusCause> {
    let spec = review.get("spec");
    let present = |key: &str| spec.and_then(|s| s.get(key)).filter(|v| !v.is_null());
    let resource = present("resourceAttributes");
    let non_resource = present("nonResourceAttributes");
    // Printed as Go marshals the internal type, whose fields have no JSON tags.
    let shown = |value: Option<&Value>| {
        value.map_or_else(
            || "null".to_string(),
            |v| {
                let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("");
                json!({"Path": text("path"), "Verb": text("verb")}).to_string()
            },
        )
    };
    match (resource, non_resource) {
        (Some(_), Some(non_resource)) => vec![cause(
            "FieldValueInvalid",
            "spec.nonResourceAttributes",
            format!(
                "Invalid value: {}: cannot be specified in combination with resourceAttributes",
                shown(Some(non_resource))
            ),
        )],
        (None, None) => vec![cause(
            "FieldValueInvalid",
            "spec.resourceAttributes",
            format!(
                "Invalid value: {}: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                shown(None)
            ),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_is_the_administrator() {
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}});
        let answered = answer("SelfSubjectReview", review).unwrap();
        assert_eq!(answered["status"]["userInfo"]["username"], "admin");
        assert_eq!(
            answered["status"]["userInfo"]["groups"],
            json!(["system:masters", "system:authenticated"])
        );
    }

    #[test]
    fn every_access_is_allowed_once_the_spec_is_valid() {
        let review =
            json!({"spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}}});
        let answered = answer("SelfSubjectAccessReview", review).unwrap();
        assert_eq!(answered["status"], json!({"allowed": true}));

        let err = answer("SelfSubjectAccessReview", json!({"spec": {}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            ".authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
        let both = json!({"spec": {"resourceAttributes": {}, "nonResourceAttributes": {"path": "/x", "verb": "get"}}});
        let err = answer("SelfSubjectAccessReview", both).unwrap_err();
        assert!(
            err.message.contains("cannot be specified in combination"),
            "{}",
            err.message
        );
    }
}
