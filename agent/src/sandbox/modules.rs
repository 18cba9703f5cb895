//! Loading the kernel modules CreateSandbox asks for, without modprobe.
//!
//! A module is found by name under `/lib/modules/<release>/` (with `-` and `_` treated
//! alike, as the kernel does) and loaded with `finit_module`. A module that is already
//! loaded counts as loaded.
//!
//! Limitations: dependencies are not resolved (list them first); only uncompressed
//! `.ko` files are found.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use hull_protocols::agent::KernelModule;
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use super::SandboxError;
use crate::config::Config;

/// Loads every module in order.
pub fn load_all(config: &Config, modules: &[KernelModule]) -> Result<(), SandboxError> {
    if modules.is_empty() {
        return Ok(());
    }
    if !config.system {
        return Err(SandboxError::NeedsSystem("loading kernel modules"));
    }
    let dir = release_dir(config)?;
    for module in modules {
        load(&dir, module)?;
    }
    Ok(())
}

fn release_dir(config: &Config) -> Result<PathBuf, SandboxError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| SandboxError::Module("kernel release".into(), e))?;
    Ok(config.modules_dir().join(release.trim()))
}

fn load(dir: &Path, module: &KernelModule) -> Result<(), SandboxError> {
    let name = module.name.as_str();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(SandboxError::BadModule(name.to_string()));
    }
    let path = find(dir, name)
        .ok_or_else(|| SandboxError::ModuleNotFound(name.to_string(), dir.to_path_buf()))?;
    let params = CString::new(module.parameters.join(" "))
        .map_err(|_| SandboxError::BadModule(name.to_string()))?;
    let file = std::fs::File::open(&path).map_err(|e| SandboxError::Module(name.into(), e))?;
    match finit_module(&file, &params, ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => {
            tracing::info!(module = name, "kernel module loaded");
            Ok(())
        }
        Err(e) => Err(SandboxError::Module(name.into(), e.into())),
    }
}

/// Finds `<name>.ko` below `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    let wanted = format!("{}.ko", name.replace('-', "_"));
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).ok()?.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().replace('-', "_") == wanted {
                return Some(path);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str) -> KernelModule {
        KernelModule {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_modules_with_dash_or_underscore() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("kernel/drivers/net");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("virtio_net.ko"), b"").unwrap();
        assert_eq!(
            find(dir.path(), "virtio-net"),
            Some(sub.join("virtio_net.ko"))
        );
        assert_eq!(find(dir.path(), "absent"), None);
    }

    #[test]
    fn nothing_to_load_is_fine_and_bad_names_are_refused() {
        load_all(&Config::default(), &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), &module("../evil")).unwrap_err();
        assert!(matches!(err, SandboxError::BadModule(_)));
        let err = load(dir.path(), &module("absent")).unwrap_err();
        assert!(matches!(err, SandboxError::ModuleNotFound(..)));
        let err = load_all(&Config::default(), &[module("x")]).unwrap_err();
        assert!(matches!(err, SandboxError::NeedsSystem(_)));
    }
}
