//! Walks a rootfs tree into the sorted entry list the image writers consume.
//!
//! Entries are sorted by path, component by component, so a directory always comes
//! before its contents and the order does not depend on the host filesystem. Each
//! entry gets an archive inode number (its position, from 1); hard links within the
//! tree share the number of their group's first entry. Times are clamped to the
//! build epoch (see [`crate::epoch`]).

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::epoch;

/// Errors from walking a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The root is missing or not a directory.
    #[error("{0} is not a directory")]
    NotDir(PathBuf),
    /// A file or directory could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file; its data is read from the entry's source.
    File,
    /// A symbolic link with its target.
    Symlink(Vec<u8>),
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// Hard-link membership of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardLink {
    /// How many entries of the tree share the inode.
    pub count: u32,
    /// Whether this is the group's last entry in archive order.
    pub last: bool,
}

/// One file, directory or special file of the tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the root, without a leading `/`.
    pub path: PathBuf,
    /// Path on the host.
    pub source: PathBuf,
    /// The file type and, for symlinks, the target.
    pub kind: Kind,
    /// The full `st_mode`: type and permission bits, setuid, setgid, sticky.
    pub mode: u32,
    /// Modification time, clamped to the epoch.
    pub mtime: u64,
    /// Data size: file length or symlink target length; 0 otherwise.
    pub size: u64,
    /// Device number of a device node: (major, minor).
    pub rdev: (u32, u32),
    /// Archive inode number (1-based; shared by hard links).
    pub ino: u32,
    /// Set when other entries of the tree are hard links to the same file.
    pub hard_link: Option<HardLink>,
}

/// Walks `root` (not included itself) with times clamped to `epoch`.
pub fn walk(root: &Path, epoch: u64) -> Result<Vec<Entry>, TreeError> {
    if !root.is_dir() {
        return Err(TreeError::NotDir(root.to_owned()));
    }
    let mut found = Vec::new();
    collect(root, Path::new(""), &mut found)?;
    found.sort_by(|a, b| a.0.path.cmp(&b.0.path));

    let mut entries: Vec<Entry> = Vec::with_capacity(found.len());
    let mut host_inodes = Vec::with_capacity(found.len());
    for (entry, meta) in found {
        host_inodes.push((meta.dev(), meta.ino(), meta.nlink()));
        entries.push(Entry {
            mtime: epoch::clamp(meta.mtime(), epoch),
            ..entry
        });
    }
    assign_inodes(&mut entries, &host_inodes);
    Ok(entries)
}

/// Recursively lists `dir` (host path `root/rel`) into `out`.
fn collect(root: &Path, rel: &Path, out: &mut Vec<(Entry, Metadata)>) -> Result<(), TreeError> {
    let dir = root.join(rel);
    let read_err = |e| TreeError::Read(dir.clone(), e);
    for item in fs::read_dir(&dir).map_err(read_err)? {
        let item = item.map_err(read_err)?;
        let path = rel.join(item.file_name());
        let source = root.join(&path);
        let meta = fs::symlink_metadata(&source).map_err(|e| TreeError::Read(source.clone(), e))?;
        let entry = describe(path, source, &meta)?;
        let is_dir = entry.kind == Kind::Dir;
        let rel_path = entry.path.clone();
        out.push((entry, meta));
        if is_dir {
            collect(root, &rel_path, out)?;
        }
    }
    Ok(())
}

fn describe(path: PathBuf, source: PathBuf, meta: &Metadata) -> Result<Entry, TreeError> {
    let ft = meta.file_type();
    let (kind, size) = if ft.is_dir() {
        (Kind::Dir, 0)
    } else if ft.is_symlink() {
        let target = fs::read_link(&source).map_err(|e| TreeError::Read(source.clone(), e))?;
        let bytes = target.as_os_str().as_bytes().to_vec();
        let len = bytes.len() as u64;
        (Kind::Symlink(bytes), len)
    } else if ft.is_char_device() {
        (Kind::CharDevice, 0)
    } else if ft.is_block_device() {
        (Kind::BlockDevice, 0)
    } else if ft.is_fifo() {
        (Kind::Fifo, 0)
    } else if ft.is_socket() {
        (Kind::Socket, 0)
    } else {
        (Kind::File, meta.len())
    };
    Ok(Entry {
        path,
        source,
        kind,
        mode: meta.mode(),
        mtime: 0,
        size,
        rdev: split_dev(meta.rdev()),
        ino: 0,
        hard_link: None,
    })
}

/// Numbers entries from 1 and links hard-linked regular files into groups.
fn assign_inodes(entries: &mut [Entry], host: &[(u64, u64, u64)]) {
    let mut groups: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    for (index, entry) in entries.iter_mut().enumerate() {
        entry.ino = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let (dev, ino, nlink) = host[index];
        if entry.kind == Kind::File && nlink > 1 {
            groups.entry((dev, ino)).or_default().push(index);
        }
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let shared = entries[members[0]].ino;
        let count = u32::try_from(members.len()).unwrap_or(u32::MAX);
        for (position, &index) in members.iter().enumerate() {
            let last = position + 1 == members.len();
            entries[index].ino = shared;
            entries[index].hard_link = Some(HardLink { count, last });
        }
    }
}

/// Splits a Linux `dev_t` into (major, minor), as glibc's `major()`/`minor()` do.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn sorted_parents_first_and_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a-b"), b"x").unwrap();
        fs::write(root.join("a/b/c"), b"yz").unwrap();
        symlink("a/b/c", root.join("z")).unwrap();

        let entries = walk(root, 5).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a-b", "z"]);
        assert!(entries.iter().all(|e| e.mtime == 5));
        assert_eq!(entries[2].size, 2);
        assert_eq!(entries[4].kind, Kind::Symlink(b"a/b/c".to_vec()));
        let inos: Vec<_> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn hard_links_share_an_inode_and_mark_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("b"), b"data").unwrap();
        fs::hard_link(root.join("b"), root.join("a")).unwrap();
        fs::hard_link(root.join("b"), root.join("c")).unwrap();
        fs::write(root.join("d"), b"solo").unwrap();

        let entries = walk(root, 0).unwrap();
        let links: Vec<_> = entries.iter().map(|e| (e.ino, e.hard_link)).collect();
        let link = |last| Some(HardLink { count: 3, last });
        assert_eq!(
            links,
            [
                (1, link(false)),
                (1, link(false)),
                (1, link(true)),
                (4, None)
            ]
        );
    }

    #[test]
    fn missing_root_is_named() {
        let err = walk(Path::new("/nonexistent-hull-root"), 0).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-hull-root"), "{err}");
    }

    #[test]
    fn splits_device_numbers() {
        // makedev(5, 1) and makedev(259, 70000) in the glibc encoding.
        assert_eq!(split_dev(0x0501), (5, 1));
        let dev = (259u64 & 0xfff) << 8 | (70000u64 & 0xff) | ((70000u64 & !0xff) << 12);
        assert_eq!(split_dev(dev), (259, 70000));
    }
}
