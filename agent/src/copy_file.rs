//! CopyFile: host files written into the guest, confined below the shared directory.
//!
//! The host names a guest path below `/run/kata-containers/shared/containers/`. The
//! path is checked lexically (absolute, that prefix, no `..` or `.`), then walked one
//! component at a time from a descriptor of the shared directory with `O_NOFOLLOW`, so
//! a symbolic link anywhere on the way (planted by an earlier copy or a container) is
//! refused rather than followed out of the directory. Missing directories are created
//! with `dir_mode`.
//!
//! A regular file arrives in chunks (`offset`, `data`) of a file of `file_size` bytes;
//! chunks go to a hidden temporary file that is renamed into place with its mode and
//! owner once the last byte is written. `file_mode` may also say directory or symlink
//! (the link target is `data`; it is created, never followed).
//!
//! Limitation: a symlink inside the path is refused even when it would stay inside.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use hull_protocols::agent::CopyFileRequest;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use thiserror::Error;

use crate::config::{Config, GUEST_SHARED_DIR};

/// Errors of CopyFile.
#[derive(Debug, Error)]
pub enum CopyFileError {
    /// The path is not a usable absolute path.
    #[error("bad path {0:?}")]
    BadPath(String),
    /// The path leaves the shared directory.
    #[error("path {0:?} escapes the shared directory")]
    Escapes(String),
    /// A symbolic link is in the way.
    #[error("path {0:?} goes through a symbolic link")]
    Symlink(String),
    /// The chunk does not fit the file.
    #[error("bad range: offset {offset}, {len} bytes, file size {size}")]
    BadRange { offset: i64, len: usize, size: i64 },
    /// Writing guest files is not allowed in this mode.
    #[error("copying files needs system mode or a --root")]
    NeedsRoot,
    /// A file system call failed.
    #[error("cannot write {0:?}")]
    Io(String, #[source] std::io::Error),
}

/// Name of the temporary file a chunked copy of `name` goes to.
fn temp_name(name: &OsStr) -> PathBuf {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(".hull-copy");
    PathBuf::from(tmp)
}

/// Answers CopyFile.
pub fn copy(config: &Config, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let relative = confine(&req.path)?;
    if !config.may_write_guest_files() {
        return Err(CopyFileError::NeedsRoot);
    }
    let io = |e: std::io::Error| CopyFileError::Io(req.path.clone(), e);
    let base = config.shared_dir();
    std::fs::create_dir_all(&base).map_err(io)?;
    let base = open_dir(None, base.as_os_str()).map_err(|e| io(e.into()))?;

    let (parents, name) = split_last(&relative);
    let dir = walk_parents(&base, &parents, req)?;
    let kind = SFlag::from_bits_truncate(req.file_mode & SFlag::S_IFMT.bits());
    match kind {
        SFlag::S_IFDIR => make_dir(&dir, name, req),
        SFlag::S_IFLNK => make_symlink(&dir, name, req),
        _ => write_chunk(&dir, name, req),
    }
}

/// Checks the path lexically and returns it relative to the shared directory.
pub fn confine(path: &str) -> Result<PathBuf, CopyFileError> {
    let p = Path::new(path);
    if path.is_empty() || !p.is_absolute() || path.contains('\0') {
        return Err(CopyFileError::BadPath(path.to_string()));
    }
    let relative = p
        .strip_prefix(GUEST_SHARED_DIR)
        .map_err(|_| CopyFileError::Escapes(path.to_string()))?;
    let normal = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !normal {
        return Err(CopyFileError::Escapes(path.to_string()));
    }
    if relative.as_os_str().is_empty() {
        return Err(CopyFileError::BadPath(path.to_string()));
    }
    Ok(relative.to_path_buf())
}

fn split_last(relative: &Path) -> (Vec<&OsStr>, &OsStr) {
    let mut parts: Vec<&OsStr> = relative.iter().collect();
    let name = parts.pop().unwrap_or_default();
    (parts, name)
}

/// Opens (creating as needed) each parent directory without following links.
fn walk_parents(
    base: &OwnedFd,
    parents: &[&OsStr],
    req: &CopyFileRequest,
) -> Result<OwnedFd, CopyFileError> {
    let mut dir = base
        .try_clone()
        .map_err(|e| CopyFileError::Io(req.path.clone(), e))?;
    for part in parents {
        let mode = Mode::from_bits_truncate(dir_mode(req));
        let created = match mkdirat(&dir, *part, mode) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(CopyFileError::Io(req.path.clone(), e.into())),
        };
        if created {
            chown_at(&dir, part, req)?;
        }
        dir = open_dir(Some(&dir), part).map_err(|e| refused(req, e))?;
    }
    Ok(dir)
}

fn dir_mode(req: &CopyFileRequest) -> u32 {
    match req.dir_mode & 0o7777 {
        0 => 0o755,
        mode => mode,
    }
}

fn open_dir(parent: Option<&OwnedFd>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match parent {
        Some(dir) => openat(dir, name, flags, Mode::empty()),
        None => nix::fcntl::open(name, flags, Mode::empty()),
    }
}

/// ELOOP / ENOTDIR on an O_NOFOLLOW open means a link (or a file) is in the way.
fn refused(req: &CopyFileRequest, e: Errno) -> CopyFileError {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => CopyFileError::Symlink(req.path.clone()),
        e => CopyFileError::Io(req.path.clone(), e.into()),
    }
}

fn make_dir(dir: &OwnedFd, name: &OsStr, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let mode = Mode::from_bits_truncate(req.file_mode & 0o7777);
    match mkdirat(dir, name, mode) {
        Ok(()) => chown_at(dir, name, req),
        Err(Errno::EEXIST) => open_dir(Some(dir), name)
            .map(drop)
            .map_err(|e| refused(req, e)),
        Err(e) => Err(CopyFileError::Io(req.path.clone(), e.into())),
    }
}

fn make_symlink(dir: &OwnedFd, name: &OsStr, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let io = |e: Errno| CopyFileError::Io(req.path.clone(), e.into());
    let target = OsStr::from_bytes(&req.data);
    if target.is_empty() || req.data.contains(&0) {
        return Err(CopyFileError::BadPath(req.path.clone()));
    }
    let tmp = temp_name(name);
    let _ = unlinkat(dir, &tmp, UnlinkatFlags::NoRemoveDir);
    symlinkat(target, dir, &tmp).map_err(io)?;
    chown_at(dir, tmp.as_os_str(), req)?;
    renameat(dir, &tmp, dir, name).map_err(io)
}

fn write_chunk(dir: &OwnedFd, name: &OsStr, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let end = check_range(req)?;
    let tmp = temp_name(name);
    let io = |e: std::io::Error| CopyFileError::Io(req.path.clone(), e);
    let mut flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if req.offset == 0 {
        flags |= OFlag::O_CREAT | OFlag::O_TRUNC;
    }
    let mode = Mode::from_bits_truncate(0o600);
    let fd = openat(dir, &tmp, flags, mode).map_err(|e| refused(req, e))?;
    let file = File::from(fd);
    file.write_all_at(&req.data, req.offset as u64)
        .map_err(io)?;
    if end < req.file_size {
        return Ok(());
    }
    fchmod(&file, Mode::from_bits_truncate(req.file_mode & 0o7777)).map_err(|e| io(e.into()))?;
    chown_fd(&file, req)?;
    renameat(dir, &tmp, dir, name).map_err(|e| io(e.into()))
}

/// Checks offset and size; returns where this chunk ends.
fn check_range(req: &CopyFileRequest) -> Result<i64, CopyFileError> {
    let bad = || CopyFileError::BadRange {
        offset: req.offset,
        len: req.data.len(),
        size: req.file_size,
    };
    let len = i64::try_from(req.data.len()).map_err(|_| bad())?;
    let end = req.offset.checked_add(len).ok_or_else(bad)?;
    if req.offset < 0 || req.file_size < 0 || end > req.file_size {
        return Err(bad());
    }
    Ok(end)
}

fn owner(req: &CopyFileRequest) -> (Option<Uid>, Option<Gid>) {
    let uid = u32::try_from(req.uid).ok().map(Uid::from_raw);
    let gid = u32::try_from(req.gid).ok().map(Gid::from_raw);
    (uid, gid)
}

/// Changes the owner of `name` in `dir` without following a link.
fn chown_at(dir: &OwnedFd, name: &OsStr, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let (uid, gid) = owner(req);
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    fchownat(dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| CopyFileError::Io(req.path.clone(), e.into()))
}

fn chown_fd(fd: &impl AsFd, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let (uid, gid) = owner(req);
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    fchown(fd, uid, gid).map_err(|e| CopyFileError::Io(req.path.clone(), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path) -> Config {
        Config {
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    fn request(path: &str, data: &[u8]) -> CopyFileRequest {
        CopyFileRequest {
            path: format!("{GUEST_SHARED_DIR}/{path}"),
            file_size: data.len() as i64,
            file_mode: 0o100644,
            dir_mode: 0o750,
            uid: -1,
            gid: -1,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn lexical_escapes_are_refused() {
        for bad in [
            "/etc/passwd",
            "/run/kata-containers/shared/containers/../x",
            "/run/kata-containers/shared/containers/a/../../x",
            "/run/kata-containers/shared/containersX/a",
        ] {
            assert!(
                matches!(confine(bad), Err(CopyFileError::Escapes(_))),
                "{bad}"
            );
        }
        for bad in ["", "relative/x", "/run/kata-containers/shared/containers/"] {
            assert!(confine(bad).is_err(), "{bad}");
        }
        assert_eq!(
            confine(&format!("{GUEST_SHARED_DIR}/a/b")).unwrap(),
            PathBuf::from("a/b")
        );
    }

    #[test]
    fn chunks_land_in_place_with_mode_after_the_last_one() {
        let root = tempfile::tempdir().unwrap();
        let c = config(root.path());
        let mut first = request("c1/etc/hosts", b"hello ");
        first.file_size = 11;
        copy(&c, &first).unwrap();
        let target = c.shared_dir().join("c1/etc/hosts");
        assert!(!target.exists(), "not in place before the last chunk");
        let mut last = request("c1/etc/hosts", b"world");
        last.file_size = 11;
        last.offset = 6;
        copy(&c, &last).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o644
        );
        let dir_meta = std::fs::metadata(target.parent().unwrap()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&dir_meta.permissions()) & 0o777,
            0o750
        );
        assert_eq!(
            std::fs::read_dir(target.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn symlinks_on_the_way_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let c = config(root.path());
        std::fs::create_dir_all(c.shared_dir()).unwrap();
        std::os::unix::fs::symlink(outside.path(), c.shared_dir().join("evil")).unwrap();
        let err = copy(&c, &request("evil/x", b"data")).unwrap_err();
        assert!(matches!(err, CopyFileError::Symlink(_)), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn final_symlink_is_replaced_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let c = config(root.path());
        std::fs::create_dir_all(c.shared_dir()).unwrap();
        let link = c.shared_dir().join("f");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        copy(&c, &request("f", b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn directories_symlinks_and_bad_ranges() {
        let root = tempfile::tempdir().unwrap();
        let c = config(root.path());
        let mut dir = request("d", b"");
        dir.file_mode = 0o040700;
        copy(&c, &dir).unwrap();
        assert!(c.shared_dir().join("d").is_dir());
        let mut link = request("d/l", b"../../../etc/passwd");
        link.file_mode = 0o120777;
        copy(&c, &link).unwrap();
        let target = std::fs::read_link(c.shared_dir().join("d/l")).unwrap();
        assert_eq!(target, PathBuf::from("../../../etc/passwd"));
        let err = copy(&c, &request("d/l/x", b"x")).unwrap_err();
        assert!(matches!(err, CopyFileError::Symlink(_)), "{err}");
        let mut bad = request("d/y", b"abc");
        bad.file_size = 2;
        assert!(matches!(
            copy(&c, &bad),
            Err(CopyFileError::BadRange { .. })
        ));
        bad.offset = -1;
        assert!(matches!(
            copy(&c, &bad),
            Err(CopyFileError::BadRange { .. })
        ));
    }

    #[test]
    fn needs_a_root_or_system_mode() {
        let err = copy(&Config::default(), &request("a", b"x")).unwrap_err();
        assert!(matches!(err, CopyFileError::NeedsRoot));
    }
}
