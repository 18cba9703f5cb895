//! A Hull image directory (`build/<arch>/` or `<prefix>/share/hull/<arch>/`):
//! the kernel, the initrd and/or disk image, and the manifest's suggested kernel
//! command lines.
//!
//! Only the manifest fields the runtime needs are read (`arch`, `cmdline`); the
//! image builder's `hull-image verify` checks the rest. A directory without a
//! manifest is accepted (the command line then comes from the options alone).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::profile;

/// The environment variable naming the default image directory.
pub const IMAGE_DIR_ENV: &str = "HULL_IMAGE_DIR";

const KERNEL: &str = "vmlinuz";
const INITRD: &str = "initrd.img";
const DISK: &str = "rootfs.img";
const MANIFEST: &str = "manifest.json";

/// Errors opening an image directory.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No directory was given and none of the default places holds an image.
    #[error("no image found (looked in {0}); build one with `make image` or pass --image")]
    NotFound(String),
    /// The kernel is missing.
    #[error("image directory {} has no {KERNEL}", .0.display())]
    NoKernel(PathBuf),
    /// The requested root is missing.
    #[error("image directory {} has no {}", .0.display(), .1)]
    NoRoot(PathBuf, &'static str),
    /// The manifest cannot be read.
    #[error("cannot read manifest {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    /// The manifest is malformed.
    #[error("malformed manifest {}", .0.display())]
    Parse(PathBuf, #[source] serde_json::Error),
}

/// What the guest's root filesystem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// `initrd.img`, the agent as `/init`.
    Initrd,
    /// `rootfs.img` as a read-only virtio-blk disk.
    Disk,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Manifest {
    arch: Option<String>,
    #[serde(default)]
    cmdline: ManifestCmdline,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ManifestCmdline {
    initrd: Option<String>,
    disk: Option<String>,
}

/// An opened image directory.
#[derive(Debug, Clone)]
pub struct Image {
    /// The directory.
    pub dir: PathBuf,
    /// The architecture from the manifest, if it has one.
    pub arch: Option<String>,
    manifest: Manifest,
}

impl Image {
    /// Opens `dir`, or the default image directory when `None`.
    pub fn open(dir: Option<&Path>) -> Result<Self, ImageError> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => default_dir()?,
        };
        if !dir.join(KERNEL).is_file() {
            return Err(ImageError::NoKernel(dir));
        }
        let manifest = read_manifest(&dir)?;
        Ok(Self {
            arch: manifest.arch.clone(),
            dir,
            manifest,
        })
    }

    /// The kernel.
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL)
    }

    /// The file for `root`, if present.
    pub fn root_file(&self, root: RootKind) -> Result<PathBuf, ImageError> {
        let name = match root {
            RootKind::Initrd => INITRD,
            RootKind::Disk => DISK,
        };
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ImageError::NoRoot(self.dir.clone(), name))
        }
    }

    /// The manifest's kernel command line for `root` (empty without one).
    pub fn cmdline(&self, root: RootKind) -> String {
        let line = match root {
            RootKind::Initrd => &self.manifest.cmdline.initrd,
            RootKind::Disk => &self.manifest.cmdline.disk,
        };
        line.clone().unwrap_or_default()
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, ImageError> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Ok(Manifest::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ImageError::Read(path.clone(), e))?;
    serde_json::from_str(&text).map_err(|e| ImageError::Parse(path, e))
}

/// The places searched for an image, in order.
pub fn default_dirs() -> Vec<PathBuf> {
    let arch = profile::host_arch();
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(IMAGE_DIR_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from("build").join(arch));
    if let Some(prefix) = profile::install_prefix() {
        dirs.push(prefix.join("share/hull").join(arch));
    }
    for prefix in ["/usr/local", "/usr"] {
        dirs.push(Path::new(prefix).join("share/hull").join(arch));
    }
    dirs
}

/// The first default place holding a kernel.
pub fn default_dir() -> Result<PathBuf, ImageError> {
    let dirs = default_dirs();
    dirs.iter()
        .find(|d| d.join(KERNEL).is_file())
        .cloned()
        .ok_or_else(|| {
            let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            ImageError::NotFound(list.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_dir(manifest: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KERNEL), b"k").unwrap();
        std::fs::write(dir.path().join(INITRD), b"i").unwrap();
        if let Some(m) = manifest {
            std::fs::write(dir.path().join(MANIFEST), m).unwrap();
        }
        dir
    }

    #[test]
    fn manifest_command_lines_are_read() {
        let dir = image_dir(Some(
            r#"{"schema_version": 1, "arch": "x86_64", "artifacts": [],
                "cmdline": {"initrd": "console=ttyS0 quiet", "disk": "root=/dev/vda1"}}"#,
        ));
        let image = Image::open(Some(dir.path())).unwrap();
        assert_eq!(image.arch.as_deref(), Some("x86_64"));
        assert_eq!(image.cmdline(RootKind::Initrd), "console=ttyS0 quiet");
        assert_eq!(image.cmdline(RootKind::Disk), "root=/dev/vda1");
        assert!(image.root_file(RootKind::Initrd).is_ok());
        let err = image.root_file(RootKind::Disk).unwrap_err().to_string();
        assert!(err.ends_with("has no rootfs.img"), "{err}");
    }

    #[test]
    fn no_manifest_means_empty_command_lines() {
        let dir = image_dir(None);
        let image = Image::open(Some(dir.path())).unwrap();
        assert_eq!(image.cmdline(RootKind::Initrd), "");
        assert_eq!(image.arch, None);
    }

    #[test]
    fn broken_manifest_and_missing_kernel_are_named() {
        let dir = image_dir(Some("{"));
        let err = Image::open(Some(dir.path())).unwrap_err();
        assert!(matches!(err, ImageError::Parse(..)));
        let empty = tempfile::tempdir().unwrap();
        let err = Image::open(Some(empty.path())).unwrap_err().to_string();
        assert!(err.ends_with("has no vmlinuz"), "{err}");
    }
}
