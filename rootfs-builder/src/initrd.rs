//! Packs a rootfs tree into a compressed newc cpio initrd.
//!
//! Members are the tree's entries in sorted order (see [`crate::tree`]), all owned by
//! 0:0, with times clamped to `SOURCE_DATE_EPOCH`. When the tree has a `dev/`
//! directory but no `dev/console`, a `dev/console` character device (5:1, mode 0600)
//! is added, as in the kernel's own default initramfs: the kernel opens it for PID 1's
//! standard streams before anything can mount devtmpfs. The file is written under a
//! temporary name and renamed into place.
//!
//! Limitation: owners are always 0:0; a per-path owner list is not supported yet.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::atomic::{AtomicError, AtomicFile};
use crate::compress::{CompressError, Compression, Encoder};
use crate::cpio::{self, CpioError};
use crate::epoch::{self, EpochError};
use crate::tree::{self, Entry, Kind, TreeError};

/// `S_IFCHR`.
const S_IFCHR: u32 = 0o020000;
/// The console device the kernel opens for PID 1.
const CONSOLE: (&str, u32, (u32, u32)) = ("dev/console", S_IFCHR | 0o600, (5, 1));

/// Errors from writing the initrd.
#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    /// `SOURCE_DATE_EPOCH` is malformed.
    #[error("build epoch")]
    Epoch(#[from] EpochError),
    /// The rootfs tree cannot be read.
    #[error("rootfs tree")]
    Tree(#[from] TreeError),
    /// The output cannot be created or committed.
    #[error("output {0}")]
    Output(PathBuf, #[source] AtomicError),
    /// The compressor failed.
    #[error("compression")]
    Compress(#[from] CompressError),
    /// Writing the archive failed.
    #[error("archive {0}")]
    Archive(PathBuf, #[source] CpioError),
    /// A member's source could not be opened.
    #[error("cannot open {0}")]
    Open(PathBuf, #[source] io::Error),
}

/// Writes the initrd for `rootfs` to `out`.
pub fn build(rootfs: &Path, out: &Path, compression: Compression) -> Result<(), InitrdError> {
    let epoch = epoch::from_env()?;
    let mut entries = tree::walk(rootfs, epoch)?;
    add_console(&mut entries, epoch);

    let output_err = |e| InitrdError::Output(out.to_owned(), e);
    let file = AtomicFile::create(out).map_err(output_err)?;
    let encoder = write_archive(&entries, Encoder::new(compression, file)?, out)?;
    let file = encoder
        .finish()
        .map_err(|e| output_err(AtomicError::Write(out.to_owned(), e)))?;
    file.commit().map_err(output_err)?;
    info!(out = %out.display(), entries = entries.len(), %compression, "initrd written");
    Ok(())
}

/// Writes `entries` as a newc archive (with trailer) into `out`, named `name` in errors.
pub fn write_archive<W: Write>(entries: &[Entry], out: W, name: &Path) -> Result<W, InitrdError> {
    let archive_err = |e| InitrdError::Archive(name.to_owned(), e);
    let mut writer = cpio::Writer::new(out);
    for entry in entries {
        let header = header_for(entry);
        match &entry.kind {
            Kind::File if header.size > 0 => {
                let mut file = File::open(&entry.source)
                    .map_err(|e| InitrdError::Open(entry.source.clone(), e))?;
                writer.append(&header, &mut file)
            }
            Kind::Symlink(target) => writer.append(&header, &mut &target[..]),
            _ => writer.append(&header, &mut io::empty()),
        }
        .map_err(archive_err)?;
    }
    writer.finish().map_err(archive_err)
}

/// The cpio header for an entry: owner 0:0, link data on the last member only.
fn header_for(entry: &Entry) -> cpio::Header {
    let (nlink, size) = match (&entry.kind, entry.hard_link) {
        (Kind::Dir, _) => (2, 0),
        (_, Some(link)) if !link.last => (link.count, 0),
        (_, Some(link)) => (link.count, entry.size),
        _ => (1, entry.size),
    };
    let device = matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice);
    let (rdev_major, rdev_minor) = if device { entry.rdev } else { (0, 0) };
    cpio::Header {
        name: entry.path.as_os_str().as_bytes().to_vec(),
        ino: u64::from(entry.ino),
        mode: entry.mode,
        uid: 0,
        gid: 0,
        nlink,
        mtime: entry.mtime,
        size,
        rdev_major,
        rdev_minor,
    }
}

/// Adds `dev/console` after `dev` when the tree has `dev/` but no console.
fn add_console(entries: &mut Vec<Entry>, epoch: u64) {
    let (name, mode, rdev) = CONSOLE;
    let console = Path::new(name);
    let Some(dev) = entries
        .iter()
        .position(|e| e.path == Path::new("dev") && e.kind == Kind::Dir)
    else {
        return;
    };
    if entries.iter().any(|e| e.path == console) {
        return;
    }
    let ino = entries.iter().map(|e| e.ino).max().unwrap_or(0) + 1;
    let at = entries[dev + 1..]
        .iter()
        .position(|e| e.path > *console)
        .map_or(entries.len(), |p| dev + 1 + p);
    let entry = Entry {
        path: console.to_owned(),
        source: PathBuf::new(),
        kind: Kind::CharDevice,
        mode,
        mtime: epoch,
        size: 0,
        rdev,
        ino,
        hard_link: None,
    };
    entries.insert(at, entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn console_is_added_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("dev/pts")).unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let mut entries = tree::walk(dir.path(), 7).unwrap();
        add_console(&mut entries, 7);
        add_console(&mut entries, 7);
        let paths: Vec<_> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["dev", "dev/console", "dev/pts", "etc"]);
        let console = &entries[1];
        assert_eq!(
            (console.mode, console.rdev, console.mtime),
            (0o020600, (5, 1), 7)
        );
    }

    #[test]
    fn no_dev_dir_means_no_console() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("init"), b"x").unwrap();
        let mut entries = tree::walk(dir.path(), 0).unwrap();
        add_console(&mut entries, 0);
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn hard_link_data_goes_on_the_last_member() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"data").unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        let entries = tree::walk(dir.path(), 0).unwrap();
        let headers: Vec<_> = entries.iter().map(header_for).collect();
        assert_eq!((headers[0].nlink, headers[0].size), (2, 0));
        assert_eq!((headers[1].nlink, headers[1].size), (2, 4));
        assert_eq!(headers[0].ino, headers[1].ino);
    }
}
