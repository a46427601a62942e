//! Reading an image archive back, checking every digest on the way: what the tests and
//! `oci-image inspect|unpack` use, and what a registry or runtime would refuse if it were wrong.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::image::{REF_NAME_ANNOTATION, sha256};

/// Why an archive is not a well-formed single-image OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The archive or a blob could not be read.
    #[error("reading the image archive: {0}")]
    Io(#[from] io::Error),
    /// A required file is missing.
    #[error("the archive has no {0}")]
    Missing(String),
    /// A JSON document does not parse as its OCI type.
    #[error("{0} is not valid: {1}")]
    Invalid(String, String),
    /// A blob's contents do not hash to its name.
    #[error("blob {path} has digest {actual}")]
    DigestMismatch {
        /// The blob's path.
        path: String,
        /// What its contents hash to.
        actual: String,
    },
    /// The uncompressed layer does not match the config's diff_id.
    #[error("the layer's diff_id is {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// From the config.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// This reader handles the images `oci-image build` writes: one manifest, one layer.
    #[error("expected one manifest with one layer, found {0}")]
    Shape(String),
}

/// A verified image: its digest, tag, config and uncompressed layer.
#[derive(Debug)]
pub struct ImageContents {
    /// The manifest digest.
    pub digest: String,
    /// The `org.opencontainers.image.ref.name` of the index entry.
    pub tag: Option<String>,
    /// The image config.
    pub config: ImageConfiguration,
    /// The single layer, uncompressed (a tar of the root file system).
    pub layer_tar: Vec<u8>,
}

/// One entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// `'d'`, `'f'` or `'l'`.
    pub kind: char,
}

impl ImageContents {
    /// Reads and verifies an archive file.
    pub fn read_file(path: &Path) -> Result<Self, ReadError> {
        Self::read(&std::fs::read(path)?)
    }

    /// Reads and verifies archive bytes: every blob hashes to its name, the manifest's
    /// descriptors match the blobs' digests and sizes, the layer matches the diff_id.
    pub fn read(archive: &[u8]) -> Result<Self, ReadError> {
        let mut files = BTreeMap::new();
        for entry in tar::Archive::new(archive).entries()? {
            let mut entry = entry?;
            if entry.header().entry_type().is_file() {
                let path = entry.path()?.to_string_lossy().into_owned();
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents)?;
                files.insert(path, contents);
            }
        }
        let file = |path: &str| {
            files
                .get(path)
                .ok_or_else(|| ReadError::Missing(path.to_owned()))
        };
        for (path, contents) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let actual = sha256(contents);
                if actual != format!("sha256:{hex}") {
                    return Err(ReadError::DigestMismatch {
                        path: path.clone(),
                        actual,
                    });
                }
            }
        }
        file("oci-layout")?;
        let index: ImageIndex = parse("index.json", file("index.json")?)?;
        let [descriptor] = index.manifests().as_slice() else {
            return Err(ReadError::Shape(format!(
                "{} manifests",
                index.manifests().len()
            )));
        };
        let blob = |descriptor: &oci_spec::image::Descriptor| {
            let path = format!(
                "blobs/{}",
                descriptor.digest().to_string().replacen(':', "/", 1)
            );
            let contents = file(&path)?;
            if contents.len() as u64 != descriptor.size() {
                return Err(ReadError::Invalid(
                    path,
                    "its size differs from the descriptor's".into(),
                ));
            }
            Ok(contents)
        };
        let digest = descriptor.digest().to_string();
        let tag = descriptor
            .annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .cloned();
        let manifest: ImageManifest = parse("the manifest", blob(descriptor)?)?;
        let config: ImageConfiguration = parse("the config", blob(manifest.config())?)?;
        let [layer] = manifest.layers().as_slice() else {
            return Err(ReadError::Shape(format!(
                "{} layers",
                manifest.layers().len()
            )));
        };
        let mut layer_tar = Vec::new();
        GzDecoder::new(blob(layer)?.as_slice()).read_to_end(&mut layer_tar)?;
        let expected = config
            .rootfs()
            .diff_ids()
            .first()
            .cloned()
            .unwrap_or_default();
        let actual = sha256(&layer_tar);
        if actual != expected {
            return Err(ReadError::DiffIdMismatch { expected, actual });
        }
        Ok(ImageContents {
            digest,
            tag,
            config,
            layer_tar,
        })
    }

    /// The layer's entries, in archive order.
    pub fn entries(&self) -> Result<Vec<LayerEntry>, ReadError> {
        let mut entries = Vec::new();
        for entry in tar::Archive::new(self.layer_tar.as_slice()).entries()? {
            let entry = entry?;
            let header = entry.header();
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                _ => 'f',
            };
            entries.push(LayerEntry {
                path: format!("/{path}"),
                mode: header.mode()?,
                uid: header.uid()?,
                gid: header.gid()?,
                kind,
            });
        }
        Ok(entries)
    }

    /// Extracts the root file system into `dest` with modes, owners (when run as root) and
    /// mtimes, as a runtime would before starting the container.
    pub fn unpack(&self, dest: &Path) -> Result<(), ReadError> {
        let mut archive = tar::Archive::new(self.layer_tar.as_slice());
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.unpack(dest)?;
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ReadError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ReadError::Invalid(what.to_owned(), error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageArchive, ImageDefinition};
    use crate::rootfs::{Owner, RootFs};

    fn archive() -> (ImageArchive, Vec<u8>) {
        let definition = ImageDefinition {
            reference: "app:v1".to_owned(),
            user: "1:1".to_owned(),
            entrypoint: vec!["/app".to_owned()],
            exposed_ports: vec![],
            env: vec![],
            working_dir: "/".to_owned(),
            labels: Default::default(),
            epoch: 0,
            created_by: "test".to_owned(),
        };
        let mut fs = RootFs::new();
        fs.file("/app", b"x".to_vec(), 0o755, Owner::ROOT).unwrap();
        fs.directory("/home/user", 0o700, Owner { uid: 1, gid: 1 })
            .unwrap();
        let image = ImageArchive::build(&definition, &fs).unwrap();
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        (image, bytes)
    }

    #[test]
    fn a_written_archive_reads_back_verified() {
        let (image, bytes) = archive();
        let contents = ImageContents::read(&bytes).unwrap();
        assert_eq!(contents.digest, image.digest());
        assert_eq!(contents.tag.as_deref(), Some("v1"));
        let entries = contents.entries().unwrap();
        let home = entries.iter().find(|e| e.path == "/home/user").unwrap();
        assert_eq!((home.mode, home.uid, home.kind), (0o700, 1, 'd'));
        let dir = tempfile::tempdir().unwrap();
        contents.unpack(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("app")).unwrap(), b"x");
    }

    #[test]
    fn a_corrupted_blob_is_refused_by_name() {
        let (image, mut bytes) = archive();
        // Flip a byte inside the config blob's contents (the JSON, found by its user field).
        let at = bytes.windows(8).position(|w| w == b"\"User\":\"").unwrap();
        bytes[at + 8] = b'9';
        let error = ImageContents::read(&bytes).unwrap_err();
        let config_path = image.blobs()[1].layout_path();
        assert!(
            error
                .to_string()
                .starts_with(&format!("blob {config_path} has digest sha256:")),
            "{error}"
        );
    }
}
