//! Debian's stock cloud kernel, for a side-by-side boot with Hull's initrd.
//!
//! The package the `linux-image-cloud-amd64` metapackage currently depends on
//! (`linux-image-6.1.0-<n>-cloud-amd64` on bookworm) is fetched with
//! `apt-get download` into `$HULL_CACHE/bench/` and unpacked there with
//! `dpkg-deb -x`; it is never installed. Later runs reuse the unpacked tree.
//!
//! Limitation: x86_64 only (the cloud flavour exists for amd64 and arm64, and
//! only amd64 is wired here).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The metapackage that names the current cloud kernel.
const METAPACKAGE: &str = "linux-image-cloud-amd64";

/// Errors obtaining the kernel.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// A tool failed.
    #[error("{tool} failed: {detail}")]
    Tool { tool: String, detail: String },
    /// The metapackage names no kernel package.
    #[error("{METAPACKAGE} depends on no linux-image package (apt-cache depends said: {0})")]
    NoPackage(String),
    /// The unpacked package has no kernel.
    #[error("{} holds no boot/vmlinuz-*", .0.display())]
    NoKernel(PathBuf),
    /// A cache file operation failed.
    #[error("cache {}", .0.display())]
    Cache(PathBuf, #[source] std::io::Error),
}

/// An unpacked Debian kernel.
#[derive(Debug, Clone)]
pub struct DebianKernel {
    /// The package name, e.g. `linux-image-6.1.0-57-cloud-amd64`.
    pub package: String,
    /// Its kernel release, e.g. `6.1.0-57-cloud-amd64`.
    pub release: String,
    /// The compressed kernel.
    pub vmlinuz: PathBuf,
    /// The kernel's `.config` as shipped (`boot/config-<release>`).
    pub config: PathBuf,
}

impl DebianKernel {
    /// The value of `CONFIG_<option>` in the kernel's config (`y`, `m`, ...).
    pub fn option(&self, option: &str) -> Option<String> {
        let text = std::fs::read_to_string(&self.config).ok()?;
        let key = format!("CONFIG_{option}=");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(str::to_string)
    }

    /// Why the agent cannot be reached with this kernel and an initrd without
    /// modules, or `None` when the virtio vsock path is built in.
    pub fn no_vsock_reason(&self) -> Option<String> {
        let modular: Vec<String> = ["VIRTIO_PCI", "VSOCKETS", "VIRTIO_VSOCKETS"]
            .iter()
            .filter_map(|o| match self.option(o).as_deref() {
                Some("y") => None,
                Some(v) => Some(format!("CONFIG_{o}={v}")),
                None => Some(format!("CONFIG_{o} unset")),
            })
            .collect();
        if modular.is_empty() {
            return None;
        }
        Some(format!(
            "{} has {} and Hull's initrd carries no modules, so the agent has no vsock",
            self.release,
            modular.join(", ")
        ))
    }
}

/// The current cloud kernel, from the cache or fetched into it.
pub fn obtain(cache: &Path) -> Result<DebianKernel, DebianError> {
    let package = current_package()?;
    let bench = cache.join("bench");
    let unpacked = bench.join(&package);
    if !unpacked.is_dir() {
        fetch(&bench, &package, &unpacked)?;
    }
    open(&package, &unpacked)
}

fn current_package() -> Result<String, DebianError> {
    let text = run(Command::new("apt-cache").args(["depends", METAPACKAGE]))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .map(str::to_string)
        .ok_or_else(|| DebianError::NoPackage(text.trim().to_string()))
}

/// Downloads and unpacks `package` into `dest` (through a temporary folder
/// renamed at the end, so a broken download leaves nothing behind).
fn fetch(bench: &Path, package: &str, dest: &Path) -> Result<(), DebianError> {
    std::fs::create_dir_all(bench).map_err(|e| DebianError::Cache(bench.to_path_buf(), e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(bench)
        .map_err(|e| DebianError::Cache(bench.to_path_buf(), e))?;
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(tmp.path()))?;
    let deb = find_deb(tmp.path())?;
    let tree = tmp.path().join("tree");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let deb_name = deb.file_name().map(PathBuf::from).unwrap_or_default();
    let _ = std::fs::rename(&deb, bench.join(deb_name));
    std::fs::rename(&tree, dest).map_err(|e| DebianError::Cache(dest.to_path_buf(), e))
}

fn find_deb(dir: &Path) -> Result<PathBuf, DebianError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DebianError::Cache(dir.to_path_buf(), e))?;
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| DebianError::Tool {
            tool: "apt-get download".into(),
            detail: format!("no .deb in {}", dir.display()),
        })
}

fn open(package: &str, unpacked: &Path) -> Result<DebianKernel, DebianError> {
    let boot = unpacked.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| DebianError::Cache(boot.clone(), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| DebianError::NoKernel(unpacked.to_path_buf()))?;
    let name = vmlinuz.file_name().unwrap_or_default().to_string_lossy();
    let release = name.trim_start_matches("vmlinuz-").to_string();
    Ok(DebianKernel {
        package: package.to_string(),
        config: boot.join(format!("config-{release}")),
        release,
        vmlinuz,
    })
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, DebianError> {
    let tool = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|e| DebianError::Tool {
        tool: tool.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DebianError::Tool {
            tool,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_with(config: &str) -> (tempfile::TempDir, DebianKernel) {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        std::fs::create_dir(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.0-9-cloud-amd64"), b"k").unwrap();
        std::fs::write(boot.join("config-6.1.0-9-cloud-amd64"), config).unwrap();
        let k = open("linux-image-6.1.0-9-cloud-amd64", dir.path()).unwrap();
        (dir, k)
    }

    #[test]
    fn modular_vsock_is_named() {
        let (_d, k) =
            kernel_with("CONFIG_VIRTIO_PCI=m\nCONFIG_VSOCKETS=m\nCONFIG_VIRTIO_VSOCKETS=m\n");
        assert_eq!(k.release, "6.1.0-9-cloud-amd64");
        let why = k.no_vsock_reason().unwrap();
        assert!(why.contains("CONFIG_VIRTIO_PCI=m"), "{why}");
        assert!(why.contains("CONFIG_VIRTIO_VSOCKETS=m"), "{why}");
    }

    #[test]
    fn built_in_vsock_is_reachable() {
        let (_d, k) =
            kernel_with("CONFIG_VIRTIO_PCI=y\nCONFIG_VSOCKETS=y\nCONFIG_VIRTIO_VSOCKETS=y\n");
        assert_eq!(k.no_vsock_reason(), None);
        assert_eq!(k.option("VIRTIO_PCI").as_deref(), Some("y"));
    }

    #[test]
    fn a_tree_without_a_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        let err = open("p", dir.path()).unwrap_err().to_string();
        assert!(err.contains("no boot/vmlinuz-*"), "{err}");
    }
}
