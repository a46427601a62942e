//! The pod-template hash (`controller.ComputeHash`, spec §4.3): FNV-32a over a canonical
//! serialisation of the template plus the collision count, spelled with `SafeEncodeString`.
//!
//! Upstream hashes a go-spew dump of its Go struct, which no other implementation can
//! reproduce byte for byte (and which changes between releases); svcplane hashes the JSON of
//! the template instead. Nothing compares hashes: ReplicaSets are matched by template equality.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// `rand.SafeEncodeString`'s alphabet: no vowels, no look-alike digits.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV32_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// FNV-1a, 32 bits (Go's `hash/fnv.New32a`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV32_OFFSET_BASIS, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(FNV32_PRIME)
    })
}

/// `rand.SafeEncodeString`: every character mapped into [`SAFE_ALPHABET`] by its code point
/// modulo 27.
pub fn safe_encode_string(s: &str) -> String {
    s.chars()
        .map(|c| SAFE_ALPHABET[(c as usize) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// `ComputeHash`: the pod-template-hash of `template` with `collision_count` mixed in as 8
/// bytes (the uint32 little-endian, then 4 zero bytes), as upstream writes it.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serialising a k8s-openapi struct is deterministic: fields in declaration order, maps
    // sorted (BTreeMap). It cannot fail for these types.
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
    }
    safe_encode_string(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_matches_the_spec_example() {
        assert_eq!(safe_encode_string("3314112556"), "775855699b");
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
    }

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
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

    #[test]
    fn hashes_are_stable_short_and_change_with_the_template_and_collisions() {
        let a = compute_hash(&template("nginx"), None);
        assert_eq!(a, compute_hash(&template("nginx"), None));
        assert!((1..=10).contains(&a.len()));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_ne!(a, compute_hash(&template("nginx:1.28"), None));
        let collided = compute_hash(&template("nginx"), Some(1));
        assert_ne!(a, collided);
        assert_ne!(collided, compute_hash(&template("nginx"), Some(2)));
        // An explicit zero count is hashed too, as upstream's non-nil pointer is.
        assert_ne!(a, compute_hash(&template("nginx"), Some(0)));
    }
}
