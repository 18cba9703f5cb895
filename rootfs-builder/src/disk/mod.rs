//! Builds the raw disk image: a GPT with one root partition holding ext4 (default) or
//! EROFS, and optionally a second partition with the root's dm-verity hash tree.
//!
//! Layout: the first partition starts at the alignment (default 2 MiB), the image size
//! is rounded up to the alignment, and the partitions are made as large as that
//! rounding allows (an ext4 filesystem is built to fill its partition, so the rounding
//! becomes free space rather than waste). The filesystem gets at least `--free` MiB
//! beyond what the tree needs; that is measured by building the filesystem once in
//! a scratch image. Disk GUID, partition GUIDs, filesystem UUID, hash seed, verity
//! salt and UUID are fixed constants below, so two builds give the same bytes.
//!
//! A description of the image ([`DiskInfo`]: filesystem, partitions, verity root hash)
//! is written next to it as `<image>.json`, for the manifest.
//!
//! NVDIMM/DAX: Kata's runtime can attach the image as an NVDIMM and boot
//! `root=/dev/pmem0p1` with DAX. That needs the filesystem to start on a 2 MiB
//! boundary of the device (done: the default alignment), and, for the kernel to map
//! the namespace in fsdax mode, an NVDIMM PFN info block ("NVDIMM_PFN_INFO") at
//! offset 4 KiB of the device describing the memmap reservation. Kata's own image
//! tool writes that block into an MBR-partitioned image; on a GPT image, offset 4 KiB
//! lies inside the partition entry array (LBA 2-33), so the PFN block cannot be added
//! to this layout.
//! Limitation: the PFN info block is not written, so this image boots from virtio-blk
//! (`root=/dev/vda1`), or as a plain (non-DAX) pmem device.
//!
//! Limitation: the tree's owners are not kept (everything is 0:0).

pub mod erofs;
pub mod ext4;
pub mod gpt;
pub mod tool;
pub mod verity;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::arch::Arch;
use crate::atomic::{self, AtomicError, AtomicFile};
use crate::elf::{self, ElfError};
use crate::epoch::{self, EpochError};
use crate::tree::{self, TreeError};
use ext4::{Ext4, Ext4Error};
use gpt::{GptError, Guid};
use tool::ToolError;
use verity::{VerityError, VerityInfo};

/// Default alignment of partitions and image size, in MiB (what DAX needs).
pub const DEFAULT_ALIGN_MIB: u64 = 2;
/// Default free space in the filesystem, in MiB (the root is mounted read-only).
pub const DEFAULT_FREE_MIB: u64 = 0;
/// Largest accepted alignment, in MiB.
const MAX_ALIGN_MIB: u64 = 1024;
const MIB: u64 = 1 << 20;
/// Space kept at the end of the disk for the backup GPT (33 sectors, in 4 KiB).
const TAIL: u64 = (gpt::TABLE_SECTORS * gpt::SECTOR).next_multiple_of(4096);
/// How many times a too-small ext4 partition is grown by one alignment unit.
const GROW_TRIES: u32 = 8;

/// GPT disk GUID.
pub const DISK_GUID: &str = "cf57d457-b89c-44a5-811b-d95c240ff6a6";
/// Unique GUID (PARTUUID) of the root partition.
pub const ROOT_PARTUUID: &str = "a5d8b403-fb60-41b5-99b9-b6209b004165";
/// Unique GUID (PARTUUID) of the verity hash partition.
pub const VERITY_PARTUUID: &str = "dd8ec21d-fcde-4e9d-93da-1a91b71376c8";
/// Filesystem UUID.
pub const FS_UUID: &str = "eaa81b42-6859-472c-bf42-fd9396d8e904";
/// ext4 directory hash seed.
pub const HASH_SEED: &str = "3a87ea78-2966-4f4b-b0a0-5094948b90a9";
/// dm-verity superblock UUID.
pub const VERITY_UUID: &str = "39fb0cb9-f8e7-4c97-8396-adbf02968d79";
/// dm-verity salt.
pub const VERITY_SALT: &str = "49ed41ad38ee107b5a79478123dc22a77ed381390a7707995b082238db06d90d";

/// The filesystem of the root partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// ext4, read-only, no journal.
    #[default]
    Ext4,
    /// EROFS, uncompressed.
    Erofs,
}

impl FromStr for FsKind {
    type Err = DiskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ext4" => Ok(FsKind::Ext4),
            "erofs" => Ok(FsKind::Erofs),
            other => Err(DiskError::Fs(other.to_owned())),
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsKind::Ext4 => "ext4",
            FsKind::Erofs => "erofs",
        })
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// The rootfs tree.
    pub rootfs: PathBuf,
    /// The image to write.
    pub out: PathBuf,
    /// Target architecture (partition types); `None`: read from the tree's `/sbin/init`.
    pub arch: Option<Arch>,
    /// Root filesystem.
    pub fs: FsKind,
    /// Whether to add a dm-verity hash partition.
    pub verity: bool,
    /// Alignment in MiB.
    pub align_mib: u64,
    /// Minimum free space in MiB (ext4 only).
    pub free_mib: u64,
}

/// A partition of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionInfo {
    /// 1-based partition number (`/dev/vda<number>`).
    pub number: u32,
    /// Unique partition GUID.
    pub partuuid: String,
    /// Byte offset in the image.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The verity partition and the parameters of its tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerityPartition {
    /// The hash partition.
    pub partition: PartitionInfo,
    /// The tree's parameters and root hash.
    pub tree: VerityInfo,
}

/// Description of a built image, saved as `<image>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskInfo {
    /// Target architecture name.
    pub arch: String,
    /// Root filesystem.
    pub fs: FsKind,
    /// Filesystem UUID.
    pub fs_uuid: String,
    /// Image size in bytes.
    pub disk_size: u64,
    /// The root partition.
    pub root: PartitionInfo,
    /// The verity hash partition, when built with verity.
    pub verity: Option<VerityPartition>,
}

/// Errors from building the disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Unknown filesystem name.
    #[error("unknown filesystem {0:?} (expected ext4 or erofs)")]
    Fs(String),
    /// `SOURCE_DATE_EPOCH` is malformed.
    #[error("build epoch")]
    Epoch(#[from] EpochError),
    /// The rootfs cannot be read.
    #[error("rootfs tree")]
    Tree(#[from] TreeError),
    /// The architecture cannot be told from the tree.
    #[error("cannot tell the architecture from {0} (pass --arch)")]
    Arch(PathBuf, #[source] Option<ElfError>),
    /// The alignment is out of range.
    #[error("alignment {0} MiB is out of range (1 to {MAX_ALIGN_MIB})")]
    Align(u64),
    /// The scratch directory could not be made.
    #[error("cannot create a scratch directory next to {0}")]
    Scratch(PathBuf, #[source] io::Error),
    /// Building the ext4 filesystem failed.
    #[error("ext4 filesystem")]
    Ext4(#[from] Ext4Error),
    /// Building the EROFS filesystem failed.
    #[error("erofs filesystem")]
    Erofs(#[source] ToolError),
    /// Building the verity tree failed.
    #[error("dm-verity hash tree")]
    Verity(#[from] VerityError),
    /// The partition table could not be laid out.
    #[error("partition table")]
    Gpt(#[from] GptError),
    /// The output could not be created or committed.
    #[error("output {0}")]
    Output(PathBuf, #[source] AtomicError),
    /// Copying into the image failed.
    #[error("cannot write the image {0}")]
    Write(PathBuf, #[source] io::Error),
}

/// The path of the description written next to `image`.
pub fn info_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Builds the image described by `opts`; returns its description.
pub fn build(opts: &DiskOptions) -> Result<DiskInfo, DiskError> {
    if !(1..=MAX_ALIGN_MIB).contains(&opts.align_mib) {
        return Err(DiskError::Align(opts.align_mib));
    }
    let epoch = epoch::from_env()?;
    let arch = resolve_arch(opts)?;
    let entries = tree::walk(&opts.rootfs, epoch)?;
    let scratch = scratch_dir(&opts.out)?;
    let align = opts.align_mib * MIB;
    let (fs_image, hash_image) = (
        scratch.path().join("fs.img"),
        scratch.path().join("hash.img"),
    );

    let root_size = build_root_fs(opts, &entries, epoch, scratch.path(), &fs_image)?;
    let hash_tree = match opts.verity {
        true => Some(verity::format(
            &fs_image,
            &hash_image,
            VERITY_SALT,
            VERITY_UUID,
        )?),
        false => None,
    };
    let hash_len = hash_tree
        .as_ref()
        .map(|_| file_len(&hash_image))
        .transpose()?;
    let layout = Layout::plan(align, root_size, hash_len);
    let info = layout.info(arch, opts.fs, hash_tree);

    let mut out =
        AtomicFile::create(&opts.out).map_err(|e| DiskError::Output(opts.out.clone(), e))?;
    assemble(
        &mut out,
        &layout,
        arch,
        &fs_image,
        hash_len.map(|_| hash_image.as_path()),
        &opts.out,
    )?;
    save_info(&info, &opts.out)?;
    out.commit()
        .map_err(|e| DiskError::Output(opts.out.clone(), e))?;
    info!(out = %opts.out.display(), size = layout.total, fs = %opts.fs, verity = opts.verity, "disk image written");
    Ok(info)
}

fn resolve_arch(opts: &DiskOptions) -> Result<Arch, DiskError> {
    if let Some(arch) = opts.arch {
        return Ok(arch);
    }
    let init = opts.rootfs.join("sbin/init");
    match elf::detect_arch(&init) {
        Ok(Some(arch)) => Ok(arch),
        Ok(None) => Err(DiskError::Arch(init, None)),
        Err(e) => Err(DiskError::Arch(init, Some(e))),
    }
}

fn scratch_dir(out: &Path) -> Result<tempfile::TempDir, DiskError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    tempfile::Builder::new()
        .prefix(&format!(".{name}.work-"))
        .tempdir_in(parent)
        .map_err(|e| DiskError::Scratch(out.to_owned(), e))
}

/// Builds the root filesystem into `image`; returns its partition's size.
fn build_root_fs(
    opts: &DiskOptions,
    entries: &[tree::Entry],
    epoch: u64,
    work: &Path,
    image: &Path,
) -> Result<u64, DiskError> {
    let align = opts.align_mib * MIB;
    match opts.fs {
        FsKind::Ext4 => {
            let ext4 = Ext4 {
                rootfs: &opts.rootfs,
                entries,
                epoch,
                uuid: FS_UUID,
                hash_seed: HASH_SEED,
                work,
            };
            build_ext4(&ext4, image, opts, align)
        }
        FsKind::Erofs => build_erofs(opts, image, epoch, align),
    }
}

/// Measures the tree, then builds ext4 to fill its partition; returns that size.
fn build_ext4(ext4: &Ext4, image: &Path, opts: &DiskOptions, align: u64) -> Result<u64, DiskError> {
    let needed = ext4.used_bytes(image)? + opts.free_mib * MIB;
    let mut size = Layout::root_size(align, needed, opts.verity);
    for _ in 0..GROW_TRIES {
        match ext4.make(image, size) {
            Err(e) if e.is_out_of_space() => size += align,
            other => return other.map(|()| size).map_err(DiskError::from),
        }
    }
    Ok(ext4.make(image, size).map(|()| size)?)
}

/// Builds EROFS; returns the partition size that holds it.
fn build_erofs(opts: &DiskOptions, image: &Path, epoch: u64, align: u64) -> Result<u64, DiskError> {
    erofs::make(&opts.rootfs, image, FS_UUID, epoch).map_err(DiskError::Erofs)?;
    Ok(Layout::root_size(align, file_len(image)?, opts.verity))
}

fn file_len(path: &Path) -> Result<u64, DiskError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| DiskError::Write(path.to_owned(), e))
}

/// Offsets and sizes of everything in the image, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    total: u64,
    root: (u64, u64),
    hash: Option<(u64, u64)>,
}

impl Layout {
    /// The root partition size for a filesystem of at least `needed` bytes.
    ///
    /// Without verity the root partition ends where the backup GPT begins, in an
    /// image rounded up to `align`; with verity it is rounded up to `align` so the
    /// hash partition starts aligned.
    fn root_size(align: u64, needed: u64, verity: bool) -> u64 {
        let needed = needed.max(1).next_multiple_of(ext4::BLOCK);
        match verity {
            true => needed.next_multiple_of(align),
            false => (align + needed + TAIL).next_multiple_of(align) - TAIL - align,
        }
    }

    fn plan(align: u64, root_size: u64, hash_len: Option<u64>) -> Layout {
        let root = (align, root_size);
        let hash = hash_len.map(|len| (align + root_size, len.next_multiple_of(ext4::BLOCK)));
        let end = hash.map_or(align + root_size, |(offset, size)| offset + size);
        let total = (end + TAIL).next_multiple_of(align);
        let hash = hash.map(|(offset, _)| (offset, total - TAIL - offset));
        Layout { total, root, hash }
    }

    fn partitions(&self, arch: Arch) -> Result<Vec<gpt::Partition>, GptError> {
        let mut parts = vec![partition(
            self.root,
            arch.root_partition_type(),
            ROOT_PARTUUID,
            "hull-root",
        )?];
        if let Some(hash) = self.hash {
            parts.push(partition(
                hash,
                arch.verity_partition_type(),
                VERITY_PARTUUID,
                "hull-root-verity",
            )?);
        }
        Ok(parts)
    }

    fn info(&self, arch: Arch, fs: FsKind, tree: Option<VerityInfo>) -> DiskInfo {
        let part = |number, partuuid: &str, (offset, size)| PartitionInfo {
            number,
            partuuid: partuuid.to_owned(),
            offset,
            size,
        };
        let verity = self.hash.zip(tree).map(|(hash, tree)| VerityPartition {
            partition: part(2, VERITY_PARTUUID, hash),
            tree,
        });
        DiskInfo {
            arch: arch.name().to_owned(),
            fs,
            fs_uuid: FS_UUID.to_owned(),
            disk_size: self.total,
            root: part(1, ROOT_PARTUUID, self.root),
            verity,
        }
    }
}

fn partition(
    (offset, size): (u64, u64),
    type_guid: &str,
    guid: &str,
    name: &str,
) -> Result<gpt::Partition, GptError> {
    Ok(gpt::Partition {
        type_guid: type_guid.parse::<Guid>()?,
        guid: guid.parse::<Guid>()?,
        name: name.to_owned(),
        first_lba: offset / gpt::SECTOR,
        last_lba: (offset + size) / gpt::SECTOR - 1,
    })
}

/// Writes the tables and copies the filesystem and hash images into `out`.
fn assemble(
    out: &mut AtomicFile,
    layout: &Layout,
    arch: Arch,
    fs_image: &Path,
    hash_image: Option<&Path>,
    name: &Path,
) -> Result<(), DiskError> {
    let tables = gpt::tables(
        layout.total / gpt::SECTOR,
        DISK_GUID.parse()?,
        &layout.partitions(arch)?,
    )?;
    let write_err = |e| DiskError::Write(name.to_owned(), e);
    let file = out
        .file()
        .map_err(|e| DiskError::Output(name.to_owned(), e))?;
    file.set_len(layout.total).map_err(write_err)?;
    file.write_all_at(&tables.primary, 0).map_err(write_err)?;
    copy_at(fs_image, file, layout.root.0).map_err(write_err)?;
    if let (Some(hash), Some((offset, _))) = (hash_image, layout.hash) {
        copy_at(hash, file, offset).map_err(write_err)?;
    }
    let backup_at = layout.total - tables.backup.len() as u64;
    file.write_all_at(&tables.backup, backup_at)
        .map_err(write_err)?;
    file.seek(SeekFrom::End(0)).map_err(write_err)?;
    Ok(())
}

/// Copies `from` into `to` at `offset`, leaving all-zero blocks as holes.
fn copy_at(from: &Path, to: &File, offset: u64) -> io::Result<()> {
    let mut src = File::open(from)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = offset;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            to.write_all_at(&buf[..n], at)?;
        }
        at += n as u64;
    }
}

fn save_info(info: &DiskInfo, image: &Path) -> Result<(), DiskError> {
    let path = info_path(image);
    let mut json = serde_json::to_vec_pretty(info).expect("DiskInfo serializes");
    json.push(b'\n');
    atomic::write_file(&path, &json).map_err(|e| DiskError::Output(path, e))
}

/// Reads the description saved next to `image`.
pub fn load_info(image: &Path) -> Result<DiskInfo, io::Error> {
    let path = info_path(image);
    let bytes = std::fs::read(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_layout_fills_up_to_the_backup_table() {
        let align = 2 * MIB;
        let root = Layout::root_size(align, 3 * MIB, false);
        let layout = Layout::plan(align, root, None);
        assert_eq!(layout.total, 6 * MIB);
        assert_eq!(layout.root, (2 * MIB, 4 * MIB - TAIL));
        assert_eq!(layout.hash, None);
    }

    #[test]
    fn exact_fit_does_not_grow() {
        let align = 2 * MIB;
        let root = Layout::root_size(align, 4 * MIB - TAIL, false);
        assert_eq!(Layout::plan(align, root, None).total, 6 * MIB);
        let root = Layout::root_size(align, 4 * MIB - TAIL + 1, false);
        assert_eq!(Layout::plan(align, root, None).total, 8 * MIB);
    }

    #[test]
    fn verity_layout_aligns_the_hash_partition() {
        let align = 2 * MIB;
        let root = Layout::root_size(align, 3 * MIB, true);
        assert_eq!(root, 4 * MIB);
        let layout = Layout::plan(align, root, Some(40_960));
        assert_eq!(layout.root, (2 * MIB, 4 * MIB));
        assert_eq!(layout.hash, Some((6 * MIB, 2 * MIB - TAIL)));
        assert_eq!(layout.total, 8 * MIB);
    }

    #[test]
    fn info_path_appends_json() {
        assert_eq!(
            info_path(Path::new("b/rootfs.img")),
            Path::new("b/rootfs.img.json")
        );
    }

    #[test]
    fn fs_names_parse() {
        assert_eq!("erofs".parse::<FsKind>().unwrap(), FsKind::Erofs);
        assert!("btrfs"
            .parse::<FsKind>()
            .unwrap_err()
            .to_string()
            .contains("btrfs"));
    }
}
