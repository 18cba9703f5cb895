//! Builds an EROFS image with erofs-utils, reproducibly.
//!
//! `mkfs.erofs` gets a fixed UUID (`-U`), one timestamp for every inode and the
//! superblock (`-T` with the build epoch, and `SOURCE_DATE_EPOCH` in its environment),
//! all files owned by root (`--all-root`) and no xattrs from the host (`-x -1`). It
//! sorts directory entries itself.
//!
//! Limitation: uncompressed only (the guest kernel then needs no EROFS_FS_ZIP);
//! every file gets the epoch as its time rather than its clamped own time.

use std::path::Path;
use std::process::Command;

use super::tool::{self, ToolError};

/// Builds `image` from `rootfs`.
pub fn make(rootfs: &Path, image: &Path, uuid: &str, epoch: u64) -> Result<(), ToolError> {
    let mut cmd = Command::new("mkfs.erofs");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .arg("--quiet")
        .arg(format!("-U{uuid}"))
        .arg(format!("-T{epoch}"))
        .args(["--all-root", "-x", "-1"])
        .arg(image)
        .arg(rootfs);
    tool::run("mkfs.erofs", "erofs-utils", &mut cmd)?;
    Ok(())
}
