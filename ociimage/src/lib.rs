//! OCI image archives built from plain files, with no container engine and no base image:
//! the root file system as data ([`rootfs`]), the image and its archive ([`image`]), reading an
//! archive back with every digest checked ([`read`]), and what svcplane's own image holds
//! ([`svcplane_image`]). Everything is deterministic, so one commit gives one digest.
#![forbid(unsafe_code)]

pub mod image;
pub mod read;
pub mod rootfs;
pub mod svcplane_image;

pub use image::{ImageArchive, ImageDefinition, ImageError};
pub use read::{ImageContents, LayerEntry, ReadError};
pub use rootfs::{Owner, RootFs, RootFsError};
