//! An image (one layer, its config, its manifest) and the OCI layout archive that holds it.
//!
//! The archive is what `skopeo copy oci-archive:…` and `podman load` read (an OCI image layout
//! in a tar), with Docker's `manifest.json` beside `index.json`, as `docker save` writes since
//! Docker 25, so that `docker load` reads it too.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    RootFsBuilder,
};

use crate::rootfs::RootFs;

/// The annotation that names the tag in an OCI layout (skopeo's `oci-archive:FILE:TAG`).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and `docker load` read for the full image name.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Why an image could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference must carry a tag: it names the image inside the archive.
    #[error("image reference {0:?} has no tag (expected NAME:TAG)")]
    NoTag(String),
    /// The OCI types refused a value.
    #[error("invalid image metadata: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// Writing the layer or the archive failed.
    #[error("writing the image: {0}")]
    Io(#[from] io::Error),
}

/// What the image runs and how it is labelled: the config's execution parameters.
#[derive(Debug, Clone)]
pub struct ImageDefinition {
    /// Full name with tag, e.g. `ghcr.io/svcplane/svcplane:0.1.0`.
    pub reference: String,
    /// `uid:gid` the process runs as.
    pub user: String,
    /// The command the image runs.
    pub entrypoint: Vec<String>,
    /// Ports the workload listens on, e.g. `9443/tcp`.
    pub exposed_ports: Vec<String>,
    /// `NAME=value` environment.
    pub env: Vec<String>,
    /// Working directory of the process.
    pub working_dir: String,
    /// OCI labels (`org.opencontainers.image.*`).
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch for every timestamp in the image (SOURCE_DATE_EPOCH).
    pub epoch: i64,
    /// What the history entry says made the layer.
    pub created_by: String,
}

/// A content-addressed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its media type.
    pub media_type: MediaType,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: MediaType, bytes: Vec<u8>) -> Self {
        Blob {
            media_type,
            digest: sha256(&bytes),
            bytes,
        }
    }

    fn descriptor(&self) -> Result<Descriptor, ImageError> {
        let digest: Digest = self.digest.parse()?;
        Ok(Descriptor::new(
            self.media_type.clone(),
            self.bytes.len() as u64,
            digest,
        ))
    }

    /// Where the blob lives in an OCI layout.
    pub fn layout_path(&self) -> String {
        format!("blobs/{}", self.digest.replacen(':', "/", 1))
    }
}

/// A built image, ready to be written as an archive.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    reference: String,
    epoch: u64,
    layer: Blob,
    config: Blob,
    manifest: Blob,
}

impl ImageArchive {
    /// Assembles the layer, config and manifest. The same inputs always give the same bytes.
    pub fn build(definition: &ImageDefinition, rootfs: &RootFs) -> Result<Self, ImageError> {
        tag_of(&definition.reference)?;
        let epoch = u64::try_from(definition.epoch).unwrap_or(0);
        let layer_tar = rootfs.to_tar(epoch)?;
        let diff_id = sha256(&layer_tar);
        let layer = Blob::new(MediaType::ImageLayerGzip, gzip(&layer_tar)?);

        let created = rfc3339(definition.epoch);
        let labels: HashMap<String, String> = definition
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let config = ImageConfigurationBuilder::default()
            .created(created.clone())
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .config(
                ConfigBuilder::default()
                    .user(definition.user.clone())
                    .exposed_ports(definition.exposed_ports.clone())
                    .env(definition.env.clone())
                    .entrypoint(definition.entrypoint.clone())
                    .working_dir(definition.working_dir.clone())
                    .labels(labels)
                    .build()?,
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![diff_id])
                    .build()?,
            )
            .history(vec![
                HistoryBuilder::default()
                    .created(created)
                    .created_by(definition.created_by.clone())
                    .build()?,
            ])
            .build()?;
        let config = Blob::new(MediaType::ImageConfig, canonical_json(&config)?);

        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor()?)
            .layers(vec![layer.descriptor()?])
            .build()?;
        let manifest = Blob::new(MediaType::ImageManifest, canonical_json(&manifest)?);
        Ok(ImageArchive {
            reference: definition.reference.clone(),
            epoch,
            layer,
            config,
            manifest,
        })
    }

    /// The image digest: the manifest's, which registries and `skopeo inspect` report.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// The blobs: layer, config, manifest.
    pub fn blobs(&self) -> [&Blob; 3] {
        [&self.layer, &self.config, &self.manifest]
    }

    /// Writes the archive: an OCI image layout plus Docker's `manifest.json`, as a tar whose
    /// entries are sorted and stamped with the image's epoch.
    pub fn write_to(&self, out: impl Write) -> Result<(), ImageError> {
        let tag = tag_of(&self.reference)?;
        let mut descriptor = self.manifest.descriptor()?;
        descriptor.set_annotations(Some(HashMap::from([
            (REF_NAME_ANNOTATION.to_owned(), tag.to_owned()),
            (
                CONTAINERD_NAME_ANNOTATION.to_owned(),
                self.reference.clone(),
            ),
        ])));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![descriptor])
            .build()?;
        let docker_manifest = serde_json::json!([{
            "Config": self.config.layout_path(),
            "RepoTags": [self.reference],
            "Layers": [self.layer.layout_path()],
        }]);

        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for blob in self.blobs() {
            files.insert(blob.layout_path(), blob.bytes.clone());
        }
        files.insert("index.json".to_owned(), canonical_json(&index)?);
        files.insert(
            "manifest.json".to_owned(),
            canonical_json(&docker_manifest)?,
        );
        files.insert(
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );

        let mut builder = tar::Builder::new(out);
        for directory in ["blobs/", "blobs/sha256/"] {
            let mut header = self.header(tar::EntryType::Directory, 0o755, 0);
            builder.append_data(&mut header, directory, io::empty())?;
        }
        for (path, bytes) in &files {
            let mut header = self.header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            builder.append_data(&mut header, path, bytes.as_slice())?;
        }
        builder.into_inner()?.flush()?;
        Ok(())
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(self.epoch);
        header
    }
}

/// The tag of `name:tag` (a `:` after the last `/`, so a registry port is not taken for one).
pub fn tag_of(reference: &str) -> Result<&str, ImageError> {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => Ok(tag),
        _ => Err(ImageError::NoTag(reference.to_owned())),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// gzip with a zero mtime and no file name, so the same tar always compresses to the same bytes.
fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// JSON with object keys sorted at every level: the OCI types keep labels and annotations in
/// HashMaps, whose iteration order would otherwise change the digest from run to run.
fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>, ImageError> {
    fn sort(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<String, serde_json::Value> = map
                    .into_iter()
                    .map(|(key, value)| (key, sort(value)))
                    .collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let value = serde_json::to_value(value).map_err(io::Error::other)?;
    serde_json::to_vec(&sort(value)).map_err(|error| ImageError::Io(io::Error::other(error)))
}

fn rfc3339(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Reads the config back from a built image (for checks and `oci-image inspect`).
pub fn config_of(archive: &ImageArchive) -> Result<ImageConfiguration, ImageError> {
    serde_json::from_slice(&archive.config.bytes)
        .map_err(|error| ImageError::Io(io::Error::other(error)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::Owner;

    fn definition() -> ImageDefinition {
        ImageDefinition {
            reference: "registry.example:5000/team/app:1.2.3".to_owned(),
            user: "65532:65532".to_owned(),
            entrypoint: vec!["/usr/bin/app".to_owned()],
            exposed_ports: vec!["9443/tcp".to_owned(), "10357/tcp".to_owned()],
            env: vec!["PATH=/usr/bin".to_owned()],
            working_dir: "/".to_owned(),
            labels: BTreeMap::from([
                (
                    "org.opencontainers.image.version".to_owned(),
                    "1.2.3".to_owned(),
                ),
                (
                    "org.opencontainers.image.revision".to_owned(),
                    "abc".to_owned(),
                ),
                (
                    "org.opencontainers.image.source".to_owned(),
                    "here".to_owned(),
                ),
            ]),
            epoch: 1_700_000_000,
            created_by: "test".to_owned(),
        }
    }

    fn rootfs() -> RootFs {
        let mut fs = RootFs::new();
        fs.file("/usr/bin/app", b"\x7fELF".to_vec(), 0o755, Owner::ROOT)
            .unwrap();
        fs
    }

    fn archive_bytes(archive: &ImageArchive) -> Vec<u8> {
        let mut bytes = Vec::new();
        archive.write_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn the_same_inputs_give_the_same_digest_and_archive_bytes() {
        let one = ImageArchive::build(&definition(), &rootfs()).unwrap();
        // HashMap iteration order differs between instances: build several to catch a leak.
        for _ in 0..8 {
            let again = ImageArchive::build(&definition(), &rootfs()).unwrap();
            assert_eq!(one.digest(), again.digest());
            assert_eq!(archive_bytes(&one), archive_bytes(&again));
        }
        let mut later = definition();
        later.epoch += 1;
        assert_ne!(
            one.digest(),
            ImageArchive::build(&later, &rootfs()).unwrap().digest()
        );
    }

    #[test]
    fn the_config_carries_the_definition_and_the_layer_diff_id() {
        let archive = ImageArchive::build(&definition(), &rootfs()).unwrap();
        let config = config_of(&archive).unwrap();
        let exec = config.config().as_ref().unwrap();
        assert_eq!(exec.user().as_deref(), Some("65532:65532"));
        assert_eq!(
            exec.entrypoint().as_deref(),
            Some(&["/usr/bin/app".to_owned()][..])
        );
        let mut ports = exec.exposed_ports().clone().unwrap();
        ports.sort();
        assert_eq!(ports, ["10357/tcp", "9443/tcp"]);
        assert_eq!(config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            config.rootfs().diff_ids(),
            &[sha256(&rootfs().to_tar(1_700_000_000).unwrap())]
        );
    }

    #[test]
    fn the_archive_is_an_oci_layout_with_docker_manifest_json_and_verifiable_blobs() {
        let archive = ImageArchive::build(&definition(), &rootfs()).unwrap();
        let bytes = archive_bytes(&archive);
        let mut files = BTreeMap::new();
        for entry in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut contents = Vec::new();
            io::Read::read_to_end(&mut entry, &mut contents).unwrap();
            files.insert(path, contents);
        }
        let paths: Vec<_> = files.keys().cloned().collect();
        assert_eq!(paths.len(), 8, "{paths:?}");
        for blob in archive.blobs() {
            assert_eq!(sha256(&files[&blob.layout_path()]), blob.digest);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["manifests"][0]["digest"], archive.digest());
        assert_eq!(
            index["manifests"][0]["annotations"][REF_NAME_ANNOTATION],
            "1.2.3"
        );
        let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(
            docker[0]["RepoTags"][0],
            "registry.example:5000/team/app:1.2.3"
        );
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    }

    #[test]
    fn a_reference_needs_a_tag_and_a_registry_port_is_not_one() {
        assert_eq!(tag_of("a/b:c").unwrap(), "c");
        assert_eq!(tag_of("host:5000/b:v1").unwrap(), "v1");
        let error = tag_of("host:5000/b").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"image reference "host:5000/b" has no tag (expected NAME:TAG)"#
        );
    }
}
