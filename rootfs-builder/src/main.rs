//! `hull-image`: the command line over the `hull_image` library.
//!
//! Each subcommand parses its arguments, calls one library function and maps the
//! result to an exit status; the error chain is printed with `{:#}`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hull_image::kernel_config;
use hull_image::{arch::Arch, compress::Compression, disk, initrd, manifest, rootfs, verify};

/// Builds Hull guest images: rootfs tree, initrd, disk image and manifest.
#[derive(Debug, Parser)]
#[command(name = "hull-image", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Assemble a rootfs tree with the agent as /sbin/init.
    Rootfs(RootfsArgs),
    /// Write a newc cpio initrd from a rootfs tree.
    Initrd(InitrdArgs),
    /// Write a raw GPT disk image with one ext4 or erofs partition.
    Disk(DiskArgs),
    /// Write manifest.json describing the artifacts in a build directory.
    Manifest(ManifestArgs),
    /// Check a build directory against its manifest.json.
    Verify(VerifyArgs),
    /// Merge kernel config fragments onto allnoconfig, run olddefconfig, verify.
    KernelConfig(KernelConfigArgs),
}

#[derive(Debug, clap::Args)]
struct KernelConfigArgs {
    /// Target architecture: x86_64, aarch64, ppc64le or s390x.
    #[arg(long)]
    arch: Arch,
    /// The unpacked kernel source tree.
    #[arg(long)]
    source: PathBuf,
    /// The out-of-tree build directory; its .config is replaced.
    #[arg(long)]
    build_dir: PathBuf,
    /// The folder of fragment folders (common/, <arch>/, feature sets).
    #[arg(long, default_value = "kernel/configs")]
    configs: PathBuf,
    /// Feature sets to add, comma-separated (e.g. debug,gpu).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// Extra fragment files merged last, comma-separated.
    #[arg(long, value_delimiter = ',')]
    fragments: Vec<PathBuf>,
    /// Cross compiler prefix (default: Debian's <triplet>- for a foreign arch).
    #[arg(long)]
    cross_compile: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RootfsArgs {
    /// Target architecture: x86_64, aarch64, ppc64le or s390x.
    #[arg(long)]
    arch: Arch,
    /// The static agent binary, installed as /sbin/init.
    #[arg(long)]
    agent: PathBuf,
    /// Output directory; replaced as a whole.
    #[arg(long)]
    out: PathBuf,
    /// A static busybox, installed as /bin/busybox with /bin/sh.
    #[arg(long)]
    with_busybox: Option<PathBuf>,
    /// A kernel modules_install root (holding lib/modules/<release>/).
    #[arg(long)]
    modules: Option<PathBuf>,
    /// A list of extra files, one `host-path guest-path mode` per line.
    #[arg(long)]
    extra_files: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InitrdArgs {
    /// The rootfs tree to pack.
    #[arg(long)]
    rootfs: PathBuf,
    /// The initrd file to write.
    #[arg(long)]
    out: PathBuf,
    /// zstd (default), gzip or none.
    #[arg(long, default_value = "zstd")]
    compression: Compression,
}

#[derive(Debug, clap::Args)]
struct DiskArgs {
    /// The rootfs tree to put in the filesystem.
    #[arg(long)]
    rootfs: PathBuf,
    /// The disk image to write (its description goes to <out>.json).
    #[arg(long)]
    out: PathBuf,
    /// Target architecture; default: read from the tree's /sbin/init.
    #[arg(long)]
    arch: Option<Arch>,
    /// Filesystem: ext4 (default) or erofs.
    #[arg(long, default_value = "ext4")]
    fs: disk::FsKind,
    /// Add a dm-verity hash tree in a second partition.
    #[arg(long)]
    verity: bool,
    /// Alignment of partitions and of the image size, in MiB.
    #[arg(long, default_value_t = disk::DEFAULT_ALIGN_MIB)]
    align: u64,
    /// Free space left in the filesystem, in MiB.
    #[arg(long, default_value_t = disk::DEFAULT_FREE_MIB)]
    free: u64,
}

#[derive(Debug, clap::Args)]
struct ManifestArgs {
    /// The build directory (build/<arch>).
    #[arg(long)]
    dir: PathBuf,
    /// Target architecture of the artifacts.
    #[arg(long)]
    arch: Arch,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The build directory holding manifest.json.
    dir: PathBuf,
}

fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hull-image: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rootfs(a) => rootfs::build(&rootfs::RootfsOptions {
            arch: a.arch,
            agent: a.agent,
            out: a.out,
            busybox: a.with_busybox,
            modules: a.modules,
            extra_files: a.extra_files,
        })
        .context("rootfs"),
        Command::Initrd(a) => initrd::build(&a.rootfs, &a.out, a.compression).context("initrd"),
        Command::Disk(a) => disk::build(&disk::DiskOptions {
            rootfs: a.rootfs,
            out: a.out,
            arch: a.arch,
            fs: a.fs,
            verity: a.verity,
            align_mib: a.align,
            free_mib: a.free,
        })
        .map(|_| ())
        .context("disk"),
        Command::Manifest(a) => manifest::write(&a.dir, a.arch)
            .map(|_| ())
            .context("manifest"),
        Command::Verify(a) => verify::verify_dir(&a.dir).context("verify"),
        Command::KernelConfig(a) => kernel_config::configure(&kernel_config::Options {
            arch: a.arch,
            source: a.source,
            build_dir: a.build_dir,
            configs: a.configs,
            features: a.features,
            extra_fragments: a.fragments,
            cross_compile: a.cross_compile,
        })
        .map(|outcome| println!("{outcome}"))
        .context("kernel-config"),
    }
}

/// Logs go to stderr; `HULL_LOG` takes a `tracing` filter (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HULL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
