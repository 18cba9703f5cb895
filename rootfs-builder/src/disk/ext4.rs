//! Builds the ext4 filesystem image with e2fsprogs, reproducibly.
//!
//! `mkfs.ext4 -d` copies the tree; what it would otherwise take from the host or the
//! clock is pinned:
//! - features, block and inode size come from a private `mke2fs.conf`
//!   (`MKE2FS_CONFIG`), not the host's: 4 KiB blocks, 256-byte inodes, no journal (the
//!   root is mounted read-only), no resize inode, no reserved blocks;
//! - the filesystem UUID (`-U`) and directory hash seed (`-E hash_seed=`) are fixed;
//! - superblock times come from `E2FSPROGS_FAKE_TIME` (e2fsprogs 1.47.0 does not read
//!   `SOURCE_DATE_EPOCH`; both are set);
//! - inode tables are written in full (`lazy_itable_init=0`), xattrs are not copied
//!   (`no_copy_xattrs`), the root is owned by 0:0;
//! - `mkfs.ext4 -d` copies each file's atime, mtime and ctime from the host and sets
//!   crtime to the clock, so a `debugfs -w` pass then sets all four times to the
//!   clamped mtime and every owner to 0:0.
//!
//! Directory entries come out in name order (e2fsprogs sorts them), so the image does
//! not depend on the host's `readdir` order.
//!
//! Limitation: file names containing `"`, `\` or a newline cannot be passed to
//! `debugfs` and are refused.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tool::{self, ToolError};
use crate::tree::Entry;

/// Filesystem block size.
pub const BLOCK: u64 = 4096;
/// Inodes beyond one per entry, and the ext4 reserved inodes.
const SPARE_INODES: usize = 32;

const MKE2FS_CONF: &str = "\
[defaults]
\tbase_features = sparse_super,large_file,filetype,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// Errors from building the ext4 image.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    /// An e2fsprogs tool failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A scratch file could not be written.
    #[error("cannot write {0}")]
    Io(PathBuf, #[source] io::Error),
    /// A file name debugfs cannot take.
    #[error("file name {0:?} contains a quote, backslash or newline")]
    Name(PathBuf),
    /// `dumpe2fs` output lacks a field.
    #[error("dumpe2fs output has no {0:?} line")]
    Dump(&'static str),
}

impl Ext4Error {
    /// Whether mkfs ran out of space (the image was too small for the tree).
    pub fn is_out_of_space(&self) -> bool {
        let stderr = match self {
            Ext4Error::Tool(e) => e.stderr().unwrap_or_default(),
            _ => "",
        };
        stderr.contains("Could not allocate") || stderr.contains("No space left")
    }
}

/// A tree to put in an ext4 image, with the fixed identity of the filesystem.
#[derive(Debug)]
pub struct Ext4<'a> {
    /// The rootfs directory.
    pub rootfs: &'a Path,
    /// Its entries (for times and the inode count).
    pub entries: &'a [Entry],
    /// The build epoch (superblock times, the root directory's times).
    pub epoch: u64,
    /// Filesystem UUID.
    pub uuid: &'a str,
    /// Directory hash seed (a UUID).
    pub hash_seed: &'a str,
    /// Scratch directory for the config and the debugfs script.
    pub work: &'a Path,
}

impl Ext4<'_> {
    /// Builds into `image` of `bytes` bytes (a multiple of [`BLOCK`]).
    pub fn make(&self, image: &Path, bytes: u64) -> Result<(), Ext4Error> {
        let io_err = |e| Ext4Error::Io(image.to_owned(), e);
        let file = File::create(image).map_err(io_err)?;
        file.set_len(bytes).map_err(io_err)?;
        drop(file);
        self.mkfs(image)?;
        self.pin_times_and_owners(image)
    }

    /// Bytes the tree occupies: builds a roomy image in `scratch` and reads the count
    /// of used blocks back.
    pub fn used_bytes(&self, scratch: &Path) -> Result<u64, Ext4Error> {
        let data: u64 = self
            .entries
            .iter()
            .map(|e| e.size.div_ceil(BLOCK) + 1)
            .sum();
        let roomy = (2 * data * BLOCK + (32 << 20)).next_multiple_of(BLOCK);
        self.make(scratch, roomy)?;
        let used = used_blocks(scratch)?;
        fs::remove_file(scratch).map_err(|e| Ext4Error::Io(scratch.to_owned(), e))?;
        Ok(used * BLOCK)
    }

    fn mkfs(&self, image: &Path) -> Result<(), Ext4Error> {
        let conf = self.work.join("mke2fs.conf");
        fs::write(&conf, MKE2FS_CONF).map_err(|e| Ext4Error::Io(conf.clone(), e))?;
        let inodes = self.entries.len() + SPARE_INODES;
        let extended = format!(
            "hash_seed={},lazy_itable_init=0,nodiscard,no_copy_xattrs,root_owner=0:0",
            self.hash_seed
        );
        let mut cmd = Command::new("mkfs.ext4");
        cmd.env("MKE2FS_CONFIG", &conf)
            .env("E2FSPROGS_FAKE_TIME", self.epoch.to_string())
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-m",
                "0",
                "-L",
                "hull-root",
            ])
            .args([
                "-N",
                &inodes.to_string(),
                "-U",
                self.uuid,
                "-E",
                &extended,
                "-d",
            ])
            .arg(self.rootfs)
            .arg(image);
        tool::run("mkfs.ext4", "e2fsprogs", &mut cmd)?;
        Ok(())
    }

    /// Sets every inode's four times to its clamped mtime and its owner to 0:0.
    fn pin_times_and_owners(&self, image: &Path) -> Result<(), Ext4Error> {
        let mut script = inode_commands("/", self.epoch);
        for entry in self.entries {
            let bytes = entry.path.as_os_str().as_bytes();
            if bytes.iter().any(|b| matches!(b, b'"' | b'\\' | b'\n')) {
                return Err(Ext4Error::Name(entry.path.clone()));
            }
            let path = format!("/{}", String::from_utf8_lossy(bytes));
            script.push_str(&inode_commands(&path, entry.mtime));
        }
        let script_path = self.work.join("debugfs.cmds");
        fs::write(&script_path, script).map_err(|e| Ext4Error::Io(script_path.clone(), e))?;

        let mut cmd = Command::new("debugfs");
        cmd.env("E2FSPROGS_FAKE_TIME", self.epoch.to_string())
            .arg("-w")
            .arg("-f")
            .arg(&script_path)
            .arg(image);
        let output = tool::run("debugfs", "e2fsprogs", &mut cmd)?;
        // debugfs reports command errors on stderr but still exits 0.
        let stderr = String::from_utf8_lossy(&output.stderr);
        match stderr.lines().find(|l| !l.starts_with("debugfs ")) {
            Some(complaint) => Err(Ext4Error::Tool(ToolError::Failed {
                tool: "debugfs",
                status: "a command failed".into(),
                stderr: complaint.to_owned(),
            })),
            None => Ok(()),
        }
    }
}

fn inode_commands(path: &str, time: u64) -> String {
    let mut out = String::new();
    for field in ["atime", "ctime", "mtime", "crtime"] {
        out.push_str(&format!("sif \"{path}\" {field} {time}\n"));
    }
    out.push_str(&format!("sif \"{path}\" uid 0\nsif \"{path}\" gid 0\n"));
    out
}

/// Used blocks of an image, from `dumpe2fs -h`.
fn used_blocks(image: &Path) -> Result<u64, Ext4Error> {
    let mut cmd = Command::new("dumpe2fs");
    cmd.arg("-h").arg(image);
    let output = tool::run("dumpe2fs", "e2fsprogs", &mut cmd)?;
    let text = String::from_utf8_lossy(&output.stdout);
    let total = dump_field(&text, "Block count")?;
    let free = dump_field(&text, "Free blocks")?;
    Ok(total.saturating_sub(free))
}

fn dump_field(text: &str, name: &'static str) -> Result<u64, Ext4Error> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .ok_or(Ext4Error::Dump(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dumpe2fs_fields() {
        let text = "Block count:              4096\nFree blocks:              1000\n";
        assert_eq!(dump_field(text, "Block count").unwrap(), 4096);
        assert_eq!(dump_field(text, "Free blocks").unwrap(), 1000);
        assert!(dump_field(text, "Inode count").is_err());
    }

    #[test]
    fn commands_quote_paths() {
        let cmds = inode_commands("/etc/a b", 9);
        assert!(cmds.contains("sif \"/etc/a b\" mtime 9\n"), "{cmds}");
        assert_eq!(cmds.lines().count(), 6);
    }
}
