//! Atomic replacement of output files and directories.
//!
//! Every artifact is built under a temporary name in the same directory as its final
//! path and renamed into place only when complete, so a failed build leaves nothing at
//! the final path (and an older artifact there stays intact). Dropping an unfinished
//! [`AtomicFile`] or [`AtomicDir`] removes the temporary.
//!
//! Limitation: a directory is swapped in with `renameat2(RENAME_EXCHANGE)`, which
//! needs Linux 3.15 and a filesystem that supports it (ext4, xfs, btrfs, tmpfs).

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use tempfile::{NamedTempFile, TempDir};

/// Mode of finished artifacts: readable by all, writable by the owner.
const ARTIFACT_MODE: u32 = 0o644;
/// Mode of a finished rootfs directory.
const DIR_MODE: u32 = 0o755;

/// Errors from creating or committing an output.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// The output path has no parent directory or file name.
    #[error("output path {0} has no parent directory and file name")]
    BadPath(PathBuf),
    /// The temporary could not be created next to the output.
    #[error("cannot create a temporary in {0} (does the directory exist and is it writable?)")]
    Create(PathBuf, #[source] io::Error),
    /// Writing or syncing the temporary failed.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] io::Error),
    /// Renaming the temporary to its final name failed.
    #[error("cannot rename the temporary to {0}")]
    Rename(PathBuf, #[source] io::Error),
}

/// Splits an output path into its parent directory and a temporary-name prefix.
fn parent_and_prefix(path: &Path) -> Result<(PathBuf, String), AtomicError> {
    let name = path
        .file_name()
        .ok_or_else(|| AtomicError::BadPath(path.to_owned()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        Some(_) => PathBuf::from("."),
        None => return Err(AtomicError::BadPath(path.to_owned())),
    };
    Ok((parent, format!(".{}.tmp-", name.to_string_lossy())))
}

/// A file being written under a temporary name next to its final path.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    writer: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    /// Creates the temporary for `path`.
    pub fn create(path: &Path) -> Result<Self, AtomicError> {
        let (parent, prefix) = parent_and_prefix(path)?;
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(&parent)
            .map_err(|e| AtomicError::Create(parent.clone(), e))?;
        Ok(Self {
            path: path.to_owned(),
            writer: BufWriter::new(temp),
        })
    }

    /// The path of the temporary (for tools that write by name).
    pub fn temp_path(&self) -> &Path {
        self.writer.get_ref().path()
    }

    /// The underlying temporary file, for positioned writes.
    pub fn file(&mut self) -> Result<&mut File, AtomicError> {
        self.writer
            .flush()
            .map_err(|e| AtomicError::Write(self.path.clone(), e))?;
        Ok(self.writer.get_mut().as_file_mut())
    }

    /// Flushes, syncs, sets the artifact mode and renames into place.
    pub fn commit(self) -> Result<(), AtomicError> {
        let path = self.path;
        let temp = self
            .writer
            .into_inner()
            .map_err(|e| AtomicError::Write(path.clone(), e.into_error()))?;
        let file = temp.as_file();
        file.set_permissions(Permissions::from_mode(ARTIFACT_MODE))
            .and_then(|()| file.sync_all())
            .map_err(|e| AtomicError::Write(path.clone(), e))?;
        temp.persist(&path)
            .map_err(|e| AtomicError::Rename(path.clone(), e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Writes a whole file atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| AtomicError::Write(path.to_owned(), e))?;
    file.commit()
}

/// A directory being filled under a temporary name next to its final path.
#[derive(Debug)]
pub struct AtomicDir {
    path: PathBuf,
    temp: TempDir,
}

impl AtomicDir {
    /// Creates the temporary directory for `path`.
    pub fn create(path: &Path) -> Result<Self, AtomicError> {
        let (parent, prefix) = parent_and_prefix(path)?;
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&parent)
            .map_err(|e| AtomicError::Create(parent.clone(), e))?;
        Ok(Self {
            path: path.to_owned(),
            temp,
        })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Puts the directory in place, replacing whatever was at the final path.
    ///
    /// An existing directory is swapped out atomically and then removed.
    pub fn commit(self) -> Result<(), AtomicError> {
        let rename_err = |e: io::Error| AtomicError::Rename(self.path.clone(), e);
        fs::set_permissions(self.temp.path(), Permissions::from_mode(DIR_MODE))
            .map_err(|e| AtomicError::Write(self.path.clone(), e))?;
        let temp = self.temp.keep();
        if fs::symlink_metadata(&self.path).is_err() {
            return fs::rename(&temp, &self.path).map_err(|e| {
                let _ = fs::remove_dir_all(&temp);
                rename_err(e)
            });
        }
        let swapped = renameat2(
            AT_FDCWD,
            &temp,
            AT_FDCWD,
            &self.path,
            RenameFlags::RENAME_EXCHANGE,
        );
        if let Err(errno) = swapped {
            let _ = fs::remove_dir_all(&temp);
            return Err(rename_err(io::Error::from(errno)));
        }
        // `temp` now holds the previous output.
        remove_any(&temp).map_err(|e| AtomicError::Write(temp.clone(), e))
    }
}

/// Removes a file or a directory tree.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.img");
        let mut file = AtomicFile::create(&out).unwrap();
        file.write_all(b"data").unwrap();
        assert!(!out.exists());
        file.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"data");
        assert_eq!(names(dir.path()), ["a.img"]);
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.img");
        fs::write(&out, b"old").unwrap();
        let mut file = AtomicFile::create(&out).unwrap();
        file.write_all(b"new").unwrap();
        drop(file);
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["a.img"]);
    }

    #[test]
    fn dir_replaces_an_existing_tree() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rootfs");
        fs::create_dir_all(out.join("old/deep")).unwrap();
        let new = AtomicDir::create(&out).unwrap();
        fs::write(new.path().join("new"), b"x").unwrap();
        new.commit().unwrap();
        assert_eq!(names(&out), ["new"]);
        assert_eq!(names(dir.path()), ["rootfs"]);
    }

    #[test]
    fn missing_parent_is_named() {
        let err = AtomicFile::create(Path::new("/nonexistent-hull/x.img")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-hull"), "{err}");
    }
}
