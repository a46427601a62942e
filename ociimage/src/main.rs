//! `oci-image`: builds svcplane's image archive (for `scripts/image`), and inspects or unpacks
//! an archive with every digest checked.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ociimage::svcplane_image::{BuildInputs, ImageFile, svcplane_image};
use ociimage::{ImageArchive, ImageContents};

#[derive(Parser)]
#[command(
    name = "oci-image",
    about = "Builds and checks svcplane's OCI image archive"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds the archive; prints the image digest, then the archive's path.
    Build {
        /// The svcplane binary to put in the image.
        #[arg(long)]
        binary: PathBuf,
        /// A shared library the binary needs, copied to the same path in the image.
        #[arg(long = "library", value_name = "PATH")]
        libraries: Vec<PathBuf>,
        /// Another host file, copied to the same path in the image (e.g. a copyright notice).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<PathBuf>,
        /// The image tag.
        #[arg(long)]
        tag: String,
        /// The version label.
        #[arg(long)]
        version: String,
        /// The revision label (git commit).
        #[arg(long)]
        revision: String,
        /// The source label (repository URL).
        #[arg(long)]
        source: String,
        /// Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH).
        #[arg(long)]
        epoch: i64,
        /// Where to write the archive.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies an archive; prints its digest, tag and config.
    Inspect {
        /// The archive.
        archive: PathBuf,
    },
    /// Verifies an archive and extracts its root file system into DIR.
    Unpack {
        /// The archive.
        archive: PathBuf,
        /// An empty or missing directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oci-image: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Build {
            binary,
            libraries,
            files,
            tag,
            version,
            revision,
            source,
            epoch,
            out,
        } => {
            let read_all = |paths: &[PathBuf]| -> anyhow::Result<Vec<ImageFile>> {
                paths.iter().map(|path| host_file(path)).collect()
            };
            let inputs = BuildInputs {
                binary: std::fs::read(&binary)
                    .with_context(|| format!("reading {}", binary.display()))?,
                libraries: read_all(&libraries)?,
                extra: read_all(&files)?,
                tag,
                version,
                revision,
                source,
                epoch,
            };
            let (definition, rootfs) = svcplane_image(&inputs)?;
            let archive = ImageArchive::build(&definition, &rootfs)?;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            // Written aside and renamed, so a failed build never leaves a truncated archive.
            let partial = out.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            archive.write_to(std::io::BufWriter::new(file))?;
            std::fs::rename(&partial, &out)
                .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
            println!("{}", archive.digest());
            println!("{}", out.display());
        }
        Command::Inspect { archive } => {
            let contents = read(&archive)?;
            println!("digest: {}", contents.digest);
            println!("tag: {}", contents.tag.as_deref().unwrap_or("(none)"));
            println!("{}", serde_json::to_string_pretty(&contents.config)?);
        }
        Command::Unpack { archive, dir } => {
            let contents = read(&archive)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            contents
                .unpack(&dir)
                .with_context(|| format!("unpacking into {}", dir.display()))?;
            println!("{}", contents.digest);
        }
    }
    Ok(())
}

fn read(archive: &Path) -> anyhow::Result<ImageContents> {
    ImageContents::read_file(archive).with_context(|| format!("{}", archive.display()))
}

/// A host file placed at the same absolute path in the image (its link target's contents).
fn host_file(path: &Path) -> anyhow::Result<ImageFile> {
    let image_path = path
        .to_str()
        .filter(|p| p.starts_with('/'))
        .with_context(|| format!("{} must be an absolute UTF-8 path", path.display()))?;
    let contents = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ImageFile {
        path: image_path.to_owned(),
        contents,
    })
}
