//! `ValidateObjectMeta` / `ValidateObjectMetaUpdate` for the fields a Service write can carry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::field::{FieldError, FieldPath, FieldValue};
use crate::names::{
    is_dns1035_label, is_dns1123_label, is_qualified_name, mask_trailing_dash, validate_labels,
};

/// Which rule an object's name must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1035 label (Services by default).
    Dns1035Label,
    /// DNS-1123 label (`RelaxedServiceNameValidation`, namespaces).
    Dns1123Label,
}

impl NameRule {
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix {
            mask_trailing_dash(name)
        } else {
            name.to_owned()
        };
        match self {
            NameRule::Dns1035Label => is_dns1035_label(&name),
            NameRule::Dns1123Label => is_dns1123_label(&name),
        }
    }
}

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn str_of(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// `ValidateObjectMeta` for a namespaced object.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    rule: NameRule,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = str_of(&meta.generate_name);
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                path.child("generateName"),
                FieldValue::Str(generate_name.to_owned()),
                msg,
            ));
        }
    }
    let name = str_of(&meta.name);
    if name.is_empty() {
        errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid(
                path.child("name"),
                FieldValue::Str(name.to_owned()),
                msg,
            ));
        }
    }
    let namespace = str_of(&meta.namespace);
    if namespace.is_empty() {
        errs.push(FieldError::required(path.child("namespace"), ""));
    } else {
        for msg in is_dns1123_label(namespace) {
            errs.push(FieldError::invalid(
                path.child("namespace"),
                FieldValue::Str(namespace.to_owned()),
                msg,
            ));
        }
    }
    if let Some(generation) = meta.generation
        && generation < 0
    {
        errs.push(FieldError::invalid(
            path.child("generation"),
            FieldValue::Int(generation),
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(common_meta(meta, path));
    errs
}

// Labels, annotations, owner references and finalizers: checked alike on create and update.
fn common_meta(meta: &ObjectMeta, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations.iter(),
            &path.child("annotations"),
        ));
    }
    for owner in meta.owner_references.iter().flatten() {
        let owner_path = path.child("ownerReferences");
        let version = match owner.api_version.split('/').collect::<Vec<_>>().as_slice() {
            [version] => *version,
            [_, version] => *version,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                owner_path.child("apiVersion"),
                FieldValue::Str(owner.api_version.clone()),
                "version must not be empty",
            ));
        }
        for (field, value) in [
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errs.push(FieldError::invalid(
                    owner_path.child(field),
                    FieldValue::Str(String::new()),
                    "must not be empty",
                ));
            }
        }
    }
    if let Some(finalizers) = &meta.finalizers {
        let finalizers_path = path.child("finalizers");
        for finalizer in finalizers {
            for msg in is_qualified_name(finalizer) {
                errs.push(FieldError::invalid(
                    finalizers_path.clone(),
                    FieldValue::Str(finalizer.clone()),
                    msg,
                ));
            }
        }
        if finalizers.iter().any(|f| f == "orphan")
            && finalizers.iter().any(|f| f == "foregroundDeletion")
        {
            errs.push(FieldError::invalid(
                finalizers_path,
                FieldValue::strings(Some(finalizers)),
                "finalizer orphan and foregroundDeletion cannot be both set",
            ));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive), total size ≤ 256 KiB.
pub fn validate_annotations<'a>(
    annotations: impl Iterator<Item = (&'a String, &'a String)> + Clone,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        // Case does not matter for annotation keys; skip the lowercase copy when already lower.
        let msgs = if k.bytes().any(|b| b.is_ascii_uppercase()) || !k.is_ascii() {
            is_qualified_name(&k.to_lowercase())
        } else {
            is_qualified_name(k)
        };
        for msg in msgs {
            errs.push(FieldError::invalid(
                path.clone(),
                FieldValue::Str(k.clone()),
                msg,
            ));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            path.clone(),
            TOTAL_ANNOTATION_SIZE_LIMIT as i64,
        ));
    }
    errs
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable; labels and annotations re-checked.
///
/// `resourceVersion` and the timestamps are not checked: the apiserver fills them from the
/// stored object before validation, so a webhook never sees them missing or changed.
pub fn validate_object_meta_update(
    new: &ObjectMeta,
    old: &ObjectMeta,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.generation.unwrap_or(0) < old.generation.unwrap_or(0) {
        errs.push(FieldError::invalid(
            path.child("generation"),
            FieldValue::Int(new.generation.unwrap_or(0)),
            "must not be decremented",
        ));
    }
    for (field, new_value, old_value) in [
        ("name", &new.name, &old.name),
        ("namespace", &new.namespace, &old.namespace),
        ("uid", &new.uid, &old.uid),
    ] {
        if str_of(new_value) != str_of(old_value) {
            errs.push(FieldError::invalid(
                path.child(field),
                FieldValue::Str(str_of(new_value).to_owned()),
                "field is immutable",
            ));
        }
    }
    errs.extend(common_meta(new, path));
    errs
}
