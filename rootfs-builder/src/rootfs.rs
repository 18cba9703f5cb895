//! Assembles the guest root filesystem tree.
//!
//! Layout: the agent is `/sbin/init` with `/init` a symlink to it (the initramfs
//! entry point); empty mount points for what PID 1 mounts (`/proc`, `/sys`, `/dev`,
//! `/run`, `/tmp`); empty `/etc/resolv.conf` and `/etc/hostname` for the agent to bind
//! over on a read-only root; optional extras: a static busybox (`/bin/busybox` and
//! `/bin/sh`) for the debug console, kernel modules under `/lib/modules`, and files
//! from an extra-files list. Runtime state such as `/run/kata-containers` is created by
//! the agent on its tmpfs, never baked in.
//!
//! The output directory is built next to its final path and swapped in whole.
//!
//! Limitation: file owners are whoever runs the build; the initrd and disk writers
//! store everything as 0:0.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

use crate::arch::Arch;
use crate::atomic::{AtomicDir, AtomicError};
use crate::elf::{self, ElfError};
use crate::extra::{self, ExtraError, ExtraFile};

/// Mount points PID 1 needs, with their modes.
const MOUNT_POINTS: [(&str, u32); 6] = [
    ("dev", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("run", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
];
/// Files the agent bind-mounts over, present and empty.
const EMPTY_FILES: [&str; 2] = ["etc/hostname", "etc/resolv.conf"];
const EXEC_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// What goes into the rootfs.
#[derive(Debug, Clone)]
pub struct RootfsOptions {
    /// Target architecture (checked against the binaries).
    pub arch: Arch,
    /// The static agent binary.
    pub agent: PathBuf,
    /// The output directory.
    pub out: PathBuf,
    /// A static busybox for the debug console.
    pub busybox: Option<PathBuf>,
    /// A kernel `modules_install` root holding `lib/modules/<release>/`.
    pub modules: Option<PathBuf>,
    /// An extra-files list (see [`crate::extra`]).
    pub extra_files: Option<PathBuf>,
}

/// Errors from assembling the rootfs.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The agent is not a static executable for the target.
    #[error("agent {0}")]
    Agent(PathBuf, #[source] ElfError),
    /// The busybox is not a static executable for the target.
    #[error("busybox {0}")]
    Busybox(PathBuf, #[source] ElfError),
    /// The modules directory has no `lib/modules`.
    #[error("modules directory {0} has no lib/modules/ (pass a modules_install root)")]
    Modules(PathBuf),
    /// The extra-files list is wrong.
    #[error("extra files")]
    Extra(#[from] ExtraError),
    /// The output could not be created or put in place.
    #[error("output {0}")]
    Output(PathBuf, #[source] AtomicError),
    /// Writing into the tree failed.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] io::Error),
}

/// Builds the rootfs tree at `opts.out`, replacing what was there.
pub fn build(opts: &RootfsOptions) -> Result<(), RootfsError> {
    let extras = check_inputs(opts)?;
    let out = AtomicDir::create(&opts.out).map_err(|e| RootfsError::Output(opts.out.clone(), e))?;
    let root = out.path();

    make_skeleton(root)?;
    install(&opts.agent, &root.join("sbin/init"), EXEC_MODE)?;
    make_symlink("sbin/init", &root.join("init"))?;
    if let Some(busybox) = &opts.busybox {
        install(busybox, &root.join("bin/busybox"), EXEC_MODE)?;
        make_symlink("busybox", &root.join("bin/sh"))?;
    }
    if let Some(modules) = &opts.modules {
        copy_tree(&modules.join("lib/modules"), &root.join("lib/modules"))?;
    }
    for file in &extras {
        install(&file.host, &root.join(&file.guest), file.mode)?;
    }

    out.commit()
        .map_err(|e| RootfsError::Output(opts.out.clone(), e))?;
    info!(out = %opts.out.display(), arch = %opts.arch, "rootfs built");
    Ok(())
}

/// Checks every input before anything is written; returns the parsed extras.
fn check_inputs(opts: &RootfsOptions) -> Result<Vec<ExtraFile>, RootfsError> {
    elf::check_static_executable(&opts.agent, opts.arch)
        .map_err(|e| RootfsError::Agent(opts.agent.clone(), e))?;
    if let Some(busybox) = &opts.busybox {
        elf::check_static_executable(busybox, opts.arch)
            .map_err(|e| RootfsError::Busybox(busybox.clone(), e))?;
    }
    if let Some(modules) = &opts.modules {
        if !modules.join("lib/modules").is_dir() {
            return Err(RootfsError::Modules(modules.clone()));
        }
    }
    match &opts.extra_files {
        Some(list) => Ok(extra::read_list(list)?),
        None => Ok(Vec::new()),
    }
}

fn make_skeleton(root: &Path) -> Result<(), RootfsError> {
    for (dir, mode) in MOUNT_POINTS {
        make_dir(&root.join(dir), mode)?;
    }
    for file in EMPTY_FILES {
        let path = root.join(file);
        fs::write(&path, b"").map_err(|e| RootfsError::Write(path.clone(), e))?;
        set_mode(&path, FILE_MODE)?;
    }
    Ok(())
}

/// Copies `from` to `to` (creating parents) and sets `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> Result<(), RootfsError> {
    make_parents(to)?;
    fs::copy(from, to).map_err(|e| RootfsError::Write(to.to_owned(), e))?;
    set_mode(to, mode)
}

fn make_symlink(target: &str, link: &Path) -> Result<(), RootfsError> {
    make_parents(link)?;
    symlink(target, link).map_err(|e| RootfsError::Write(link.to_owned(), e))
}

/// Copies a tree, keeping symlinks as symlinks and the source's permission bits.
fn copy_tree(from: &Path, to: &Path) -> Result<(), RootfsError> {
    let read_err = |e| RootfsError::Write(from.to_owned(), e);
    make_dir(to, DIR_MODE)?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).map_err(|e| RootfsError::Write(src.clone(), e))?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(|e| RootfsError::Write(src.clone(), e))?;
            symlink(&target, &dst).map_err(|e| RootfsError::Write(dst.clone(), e))?;
        } else {
            install(&src, &dst, meta.permissions().mode() & 0o7777)?;
        }
    }
    Ok(())
}

fn make_parents(path: &Path) -> Result<(), RootfsError> {
    match path.parent() {
        Some(parent) if !parent.is_dir() => make_dir(parent, DIR_MODE),
        _ => Ok(()),
    }
}

/// Creates `dir` with `mode`, and any missing parents with the directory mode
/// (explicitly, so the builder's umask does not leak into the image).
fn make_dir(dir: &Path, mode: u32) -> Result<(), RootfsError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for parent in missing.iter().skip(1).rev() {
        fs::create_dir(parent).map_err(|e| RootfsError::Write(parent.to_path_buf(), e))?;
        set_mode(parent, DIR_MODE)?;
    }
    if !dir.is_dir() {
        fs::create_dir(dir).map_err(|e| RootfsError::Write(dir.to_owned(), e))?;
    }
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RootfsError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| RootfsError::Write(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_keeps_symlinks_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("kernel/fs")).unwrap();
        fs::write(src.join("kernel/fs/a.ko"), b"ko").unwrap();
        set_mode(&src.join("kernel/fs/a.ko"), 0o600).unwrap();
        symlink("kernel/fs/a.ko", src.join("link")).unwrap();

        let dst = dir.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        let meta = fs::metadata(dst.join("kernel/fs/a.ko")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("kernel/fs/a.ko")
        );
    }
}
