//! Artifact sizes, read from the files of the build directory.

use std::path::Path;

use super::figure::{Figure, Unit, Value};

/// The artifacts and their labels.
const ARTIFACTS: &[(&str, &str)] = &[
    ("hull-agent", "agent binary (static, stripped)"),
    ("initrd.img", "initrd (compressed cpio)"),
    ("rootfs.img", "disk image"),
    ("vmlinuz", "kernel, compressed (vmlinuz)"),
    ("vmlinux", "kernel, uncompressed (vmlinux)"),
];

/// One figure per artifact; a missing one fails.
pub fn measure(build_dir: &Path) -> Vec<Figure> {
    ARTIFACTS
        .iter()
        .map(|(name, label)| {
            let path = build_dir.join(name);
            let value = match std::fs::metadata(&path) {
                Ok(m) => Value::Single {
                    value: m.len() as f64,
                },
                Err(e) => Value::Failed {
                    reason: format!("{}: {e} (run `make image`)", path.display()),
                },
            };
            Figure::new(&format!("size.{name}"), "Sizes", label, Unit::Bytes, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_files_are_sized_missing_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), vec![0u8; 1234]).unwrap();
        let figures = measure(dir.path());
        let kernel = figures.iter().find(|f| f.id == "size.vmlinuz").unwrap();
        assert_eq!(kernel.central(), Some(1234.0));
        let agent = figures.iter().find(|f| f.id == "size.hull-agent").unwrap();
        assert!(agent.failed());
    }
}
