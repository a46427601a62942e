//! The image's file system as plain data, and its layer tar.
//!
//! Entries are kept in a sorted map and every header field that varies between machines (mtime,
//! owner names, the order a directory listing happens to return) is fixed, so that the same
//! files always give the same bytes: the image digest is reproducible.

use std::collections::BTreeMap;
use std::io;

/// Why a path or an entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RootFsError {
    /// Image paths are absolute and free of `.`, `..` and empty components.
    #[error("image path {0:?} must be absolute and must not contain '.', '..' or '//'")]
    BadPath(String),
    /// Two entries for one path would make the layer ambiguous.
    #[error("image path {0} is given twice")]
    Duplicate(String),
    /// A file cannot live under a path that is itself a file or a link.
    #[error("image path {0} is not a directory, but {1} is placed under it")]
    NotADirectory(String, String),
}

/// The numeric owner of an entry; names are left out of the tar, as in distroless images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
}

impl Owner {
    /// uid 0, gid 0.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One path of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits (and sticky bit), e.g. `0o755`.
    pub mode: u32,
    /// Numeric owner.
    pub owner: Owner,
    /// Directory, file or link.
    pub kind: EntryKind,
}

/// A whole file system tree, the contents of one layer.
#[derive(Debug, Clone, Default)]
pub struct RootFs {
    /// Keyed by the path without its leading `/`; sorted, so parents precede their children.
    entries: BTreeMap<String, Entry>,
}

impl RootFs {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and any missing parent, as root-owned 0755).
    pub fn directory(&mut self, path: &str, mode: u32, owner: Owner) -> Result<(), RootFsError> {
        let key = relative(path)?;
        // An explicit directory may refine one that was created implicitly as a parent.
        if let Some(existing) = self.entries.get(&key)
            && existing.kind != EntryKind::Directory
        {
            return Err(RootFsError::Duplicate(path.to_owned()));
        }
        self.ensure_parents(&key)?;
        self.entries.insert(
            key,
            Entry {
                mode,
                owner,
                kind: EntryKind::Directory,
            },
        );
        Ok(())
    }

    /// Adds a regular file (and any missing parent directory).
    pub fn file(
        &mut self,
        path: &str,
        contents: Vec<u8>,
        mode: u32,
        owner: Owner,
    ) -> Result<(), RootFsError> {
        self.insert_new(
            path,
            Entry {
                mode,
                owner,
                kind: EntryKind::File(contents),
            },
        )
    }

    /// Adds a symbolic link (and any missing parent directory).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), RootFsError> {
        let kind = EntryKind::Symlink(target.to_owned());
        self.insert_new(
            path,
            Entry {
                mode: 0o777,
                owner: Owner::ROOT,
                kind,
            },
        )
    }

    /// Every entry, by absolute path, in tar order.
    pub fn entries(&self) -> impl Iterator<Item = (String, &Entry)> {
        self.entries
            .iter()
            .map(|(key, entry)| (format!("/{key}"), entry))
    }

    /// The uncompressed layer: a ustar archive, entries sorted by path, every mtime `mtime`.
    pub fn to_tar(&self, mtime: u64) -> io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (key, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mode(entry.mode);
            header.set_uid(entry.owner.uid);
            header.set_gid(entry.owner.gid);
            header.set_mtime(mtime);
            match &entry.kind {
                EntryKind::Directory => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{key}/"), io::empty())?;
                }
                EntryKind::File(contents) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(contents.len() as u64);
                    builder.append_data(&mut header, key, contents.as_slice())?;
                }
                EntryKind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, key, target)?;
                }
            }
        }
        builder.into_inner()
    }

    fn insert_new(&mut self, path: &str, entry: Entry) -> Result<(), RootFsError> {
        let key = relative(path)?;
        if self.entries.contains_key(&key) {
            return Err(RootFsError::Duplicate(path.to_owned()));
        }
        self.ensure_parents(&key)?;
        self.entries.insert(key, entry);
        Ok(())
    }

    fn ensure_parents(&mut self, key: &str) -> Result<(), RootFsError> {
        let mut end = 0;
        while let Some(slash) = key[end..].find('/') {
            let parent = &key[..end + slash];
            match self.entries.get(parent) {
                None => {
                    let dir = Entry {
                        mode: 0o755,
                        owner: Owner::ROOT,
                        kind: EntryKind::Directory,
                    };
                    self.entries.insert(parent.to_owned(), dir);
                }
                Some(entry) if entry.kind == EntryKind::Directory => {}
                Some(_) => {
                    return Err(RootFsError::NotADirectory(
                        format!("/{parent}"),
                        format!("/{key}"),
                    ));
                }
            }
            end += slash + 1;
        }
        Ok(())
    }
}

/// `/usr/bin/x` → `usr/bin/x`, refusing anything that could escape or alias another path.
fn relative(path: &str) -> Result<String, RootFsError> {
    let bad = || RootFsError::BadPath(path.to_owned());
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty()
        || rest
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad());
    }
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    header.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn parents_are_created_and_precede_their_children_in_sorted_order() {
        let mut fs = RootFs::new();
        fs.file("/usr/bin/svcplane", b"elf".to_vec(), 0o755, Owner::ROOT)
            .unwrap();
        fs.file("/etc/passwd", b"root".to_vec(), 0o644, Owner::ROOT)
            .unwrap();
        fs.directory(
            "/home/nonroot",
            0o700,
            Owner {
                uid: 65532,
                gid: 65532,
            },
        )
        .unwrap();
        let entries = names(&fs.to_tar(7).unwrap());
        let paths: Vec<_> = entries.iter().map(|(path, ..)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/passwd",
                "home/",
                "home/nonroot/",
                "usr/",
                "usr/bin/",
                "usr/bin/svcplane"
            ]
        );
        assert_eq!(entries[3], ("home/nonroot/".to_owned(), 0o700, 65532, 7));
        assert!(entries.iter().all(|(.., mtime)| *mtime == 7));
    }

    #[test]
    fn the_same_files_added_in_any_order_give_the_same_bytes() {
        let mut one = RootFs::new();
        one.file("/b/x", b"1".to_vec(), 0o644, Owner::ROOT).unwrap();
        one.file("/a/y", b"2".to_vec(), 0o644, Owner::ROOT).unwrap();
        let mut two = RootFs::new();
        two.file("/a/y", b"2".to_vec(), 0o644, Owner::ROOT).unwrap();
        two.file("/b/x", b"1".to_vec(), 0o644, Owner::ROOT).unwrap();
        assert_eq!(one.to_tar(0).unwrap(), two.to_tar(0).unwrap());
        assert_ne!(one.to_tar(0).unwrap(), one.to_tar(1).unwrap());
    }

    #[test]
    fn paths_that_could_escape_or_alias_are_refused() {
        let mut fs = RootFs::new();
        for bad in ["relative", "/a/../b", "/a//b", "/./a", "/"] {
            let error = fs.file(bad, Vec::new(), 0o644, Owner::ROOT).unwrap_err();
            assert!(matches!(error, RootFsError::BadPath(_)), "{bad}: {error}");
        }
        fs.file("/a", Vec::new(), 0o644, Owner::ROOT).unwrap();
        assert!(matches!(
            fs.file("/a", Vec::new(), 0o644, Owner::ROOT),
            Err(RootFsError::Duplicate(_))
        ));
        let error = fs.file("/a/b", Vec::new(), 0o644, Owner::ROOT).unwrap_err();
        assert_eq!(
            error.to_string(),
            "image path /a is not a directory, but /a/b is placed under it"
        );
    }

    #[test]
    fn an_explicit_directory_refines_an_implicit_parent() {
        let mut fs = RootFs::new();
        fs.file("/tmp/x", Vec::new(), 0o644, Owner::ROOT).unwrap();
        fs.directory("/tmp", 0o1777, Owner::ROOT).unwrap();
        let entries = names(&fs.to_tar(0).unwrap());
        assert_eq!(entries[0].1, 0o1777);
    }

    #[test]
    fn symlinks_keep_their_target() {
        let mut fs = RootFs::new();
        fs.symlink("/lib64/ld.so", "/lib/ld.so").unwrap();
        let bytes = fs.to_tar(0).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let link = archive.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(
            link.link_name().unwrap().unwrap().to_str(),
            Some("/lib/ld.so")
        );
    }
}
