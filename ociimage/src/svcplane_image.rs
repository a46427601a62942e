//! What svcplane's image is: the files of a distroless/cc-style root file system around the
//! binary, and the execution parameters the Deployments in `config/` rely on. The `Dockerfile`
//! at the repository root describes the same image; a test holds the two together.

use std::collections::BTreeMap;

use crate::image::ImageDefinition;
use crate::rootfs::{Owner, RootFs, RootFsError};

/// The image's name without a tag, as `config/` names it.
pub const REPOSITORY: &str = "ghcr.io/svcplane/svcplane";
/// Where the binary lives in the image.
pub const BINARY_PATH: &str = "/usr/bin/svcplane";
/// distroless's `nonroot` user and group.
pub const NONROOT: Owner = Owner {
    uid: 65532,
    gid: 65532,
};
/// The user the process runs as, as `config/`'s `runAsNonRoot` requires: numeric, so the
/// kubelet can check it without reading /etc/passwd.
pub const USER: &str = "65532:65532";
/// The webhook's HTTPS port and the controller-manager's metrics/health port.
pub const EXPOSED_PORTS: [&str; 2] = ["9443/tcp", "10357/tcp"];
/// The working directory: the nonroot user's home.
pub const WORKING_DIR: &str = "/home/nonroot";
/// The process's PATH (distroless's).
pub const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A file copied into the image.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Absolute path in the image.
    pub path: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// What varies from build to build.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The svcplane binary.
    pub binary: Vec<u8>,
    /// The shared libraries it needs (with the dynamic loader), at the paths it asks for them.
    pub libraries: Vec<ImageFile>,
    /// Other files, such as the libraries' copyright notices.
    pub extra: Vec<ImageFile>,
    /// The tag, normally the crate version.
    pub tag: String,
    /// `org.opencontainers.image.version`.
    pub version: String,
    /// `org.opencontainers.image.revision`: the git commit.
    pub revision: String,
    /// `org.opencontainers.image.source`.
    pub source: String,
    /// SOURCE_DATE_EPOCH: the commit time.
    pub epoch: i64,
}

/// The image definition and root file system for one build.
pub fn svcplane_image(inputs: &BuildInputs) -> Result<(ImageDefinition, RootFs), RootFsError> {
    let mut fs = RootFs::new();
    fs.file(BINARY_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    for library in &inputs.libraries {
        fs.file(&library.path, library.contents.clone(), 0o755, Owner::ROOT)?;
    }
    for file in &inputs.extra {
        fs.file(&file.path, file.contents.clone(), 0o644, Owner::ROOT)?;
    }
    // distroless's accounts: the runtime and tools that map uids to names find them here.
    let passwd = "root:x:0:0:root:/root:/sbin/nologin\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                  nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
    let group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
    fs.file(
        "/etc/passwd",
        passwd.as_bytes().to_vec(),
        0o644,
        Owner::ROOT,
    )?;
    fs.file("/etc/group", group.as_bytes().to_vec(), 0o644, Owner::ROOT)?;
    // glibc reads it for name lookups (an API server named by host name in a kubeconfig).
    fs.file(
        "/etc/nsswitch.conf",
        b"hosts: files dns\n".to_vec(),
        0o644,
        Owner::ROOT,
    )?;
    fs.directory("/root", 0o700, Owner::ROOT)?;
    fs.directory(WORKING_DIR, 0o700, NONROOT)?;
    fs.directory("/tmp", 0o1777, Owner::ROOT)?;
    // Mount points of the Deployments' volumes, so read-only root file systems need none made.
    fs.directory("/etc/svcplane", 0o755, Owner::ROOT)?;
    fs.directory(
        "/var/run/secrets/kubernetes.io/serviceaccount",
        0o755,
        Owner::ROOT,
    )?;

    let labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_owned(),
            "svcplane".to_owned(),
        ),
        (
            "org.opencontainers.image.description".to_owned(),
            "The Kubernetes Service control plane, in Rust".to_owned(),
        ),
        (
            "org.opencontainers.image.licenses".to_owned(),
            "Apache-2.0".to_owned(),
        ),
        (
            "org.opencontainers.image.source".to_owned(),
            inputs.source.clone(),
        ),
        (
            "org.opencontainers.image.version".to_owned(),
            inputs.version.clone(),
        ),
        (
            "org.opencontainers.image.revision".to_owned(),
            inputs.revision.clone(),
        ),
    ]);
    let definition = ImageDefinition {
        reference: format!("{REPOSITORY}:{}", inputs.tag),
        user: USER.to_owned(),
        entrypoint: vec![BINARY_PATH.to_owned()],
        exposed_ports: EXPOSED_PORTS
            .iter()
            .map(|port| (*port).to_owned())
            .collect(),
        env: vec![PATH.to_owned()],
        working_dir: WORKING_DIR.to_owned(),
        labels,
        epoch: inputs.epoch,
        created_by: "scripts/image (ociimage)".to_owned(),
    };
    Ok((definition, fs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BuildInputs {
        BuildInputs {
            binary: b"\x7fELF".to_vec(),
            libraries: vec![ImageFile {
                path: "/lib/x86_64-linux-gnu/libc.so.6".to_owned(),
                contents: b"libc".to_vec(),
            }],
            extra: vec![],
            tag: "0.1.0".to_owned(),
            version: "0.1.0".to_owned(),
            revision: "0123abc".to_owned(),
            source: "https://example.invalid/svcplane".to_owned(),
            epoch: 0,
        }
    }

    #[test]
    fn the_image_has_the_binary_the_nonroot_home_and_no_shell() {
        let (definition, fs) = svcplane_image(&inputs()).unwrap();
        assert_eq!(definition.reference, "ghcr.io/svcplane/svcplane:0.1.0");
        let paths: Vec<String> = fs.entries().map(|(path, _)| path).collect();
        for expected in [
            BINARY_PATH,
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/etc/passwd",
            "/tmp",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} missing from {paths:?}"
            );
        }
        assert!(
            !paths
                .iter()
                .any(|p| p.ends_with("/sh") || p.ends_with("/bash"))
        );
        let (_, home) = fs.entries().find(|(path, _)| path == WORKING_DIR).unwrap();
        assert_eq!((home.mode, home.owner), (0o700, NONROOT));
    }

    #[test]
    fn the_labels_carry_version_revision_and_source() {
        let (definition, _) = svcplane_image(&inputs()).unwrap();
        assert_eq!(
            definition.labels["org.opencontainers.image.revision"],
            "0123abc"
        );
        assert_eq!(
            definition.labels["org.opencontainers.image.version"],
            "0.1.0"
        );
        assert_eq!(
            definition.labels["org.opencontainers.image.source"],
            "https://example.invalid/svcplane"
        );
    }
}
