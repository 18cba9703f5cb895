//! Running the kernel's own config targets (`allnoconfig`, `olddefconfig`) in an
//! out-of-tree build folder, and the per-architecture names kbuild uses.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::arch::Arch;

/// Errors from running `make` in the kernel tree.
#[derive(Debug, thiserror::Error)]
pub enum KbuildError {
    /// `make` could not be started.
    #[error("cannot run make (is it installed? run `make deps`)")]
    Spawn(#[source] io::Error),
    /// A config target failed; make's own output says why.
    #[error("`make {target}` failed in {source_tree} ({status})")]
    Failed {
        /// The make target.
        target: String,
        /// The kernel source tree.
        source_tree: PathBuf,
        /// How make exited.
        status: ExitStatus,
    },
}

/// The kernel's `ARCH=` value.
pub fn kernel_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "arm64",
        Arch::Ppc64le => "powerpc",
        Arch::S390x => "s390",
    }
}

/// The folder under `arch/` holding the architecture's Kconfig (`SRCARCH`).
pub fn source_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86",
        Arch::Aarch64 => "arm64",
        Arch::Ppc64le => "powerpc",
        Arch::S390x => "s390",
    }
}

/// The folder of arch fragments under `kernel/configs/`.
pub fn config_dir(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "arm64",
        Arch::Ppc64le => "ppc64le",
        Arch::S390x => "s390x",
    }
}

/// Debian's cross compiler prefix for `arch`, or `None` when building on it.
pub fn default_cross_compile(arch: Arch) -> Option<String> {
    let (host, prefix) = match arch {
        Arch::X86_64 => ("x86_64", "x86_64-linux-gnu-"),
        Arch::Aarch64 => ("aarch64", "aarch64-linux-gnu-"),
        Arch::Ppc64le => ("powerpc64", "powerpc64le-linux-gnu-"),
        Arch::S390x => ("s390x", "s390x-linux-gnu-"),
    };
    (std::env::consts::ARCH != host).then(|| prefix.to_owned())
}

/// A kernel source tree with an out-of-tree build folder for one architecture.
#[derive(Debug, Clone)]
pub struct Kbuild {
    /// The unpacked kernel source.
    pub source: PathBuf,
    /// The build folder (`O=`), holding `.config`.
    pub build_dir: PathBuf,
    /// The target architecture.
    pub arch: Arch,
    /// The cross compiler prefix, if any (`CROSS_COMPILE=`).
    pub cross_compile: Option<String>,
}

impl Kbuild {
    /// The `.config` in the build folder.
    pub fn config_path(&self) -> PathBuf {
        self.build_dir.join(".config")
    }

    /// Runs a config target; `allconfig` is passed as `KCONFIG_ALLCONFIG`.
    pub fn run(&self, target: &str, allconfig: Option<&Path>) -> Result<(), KbuildError> {
        let mut make = Command::new("make");
        make.arg("-s")
            .arg("-C")
            .arg(&self.source)
            .arg(format!("O={}", self.build_dir.display()))
            .arg(format!("ARCH={}", kernel_arch(self.arch)));
        if let Some(prefix) = &self.cross_compile {
            make.arg(format!("CROSS_COMPILE={prefix}"));
        }
        if let Some(path) = allconfig {
            make.env("KCONFIG_ALLCONFIG", path);
        }
        make.arg(target);
        tracing::debug!(target, build_dir = %self.build_dir.display(), "make");
        let status = make.status().map_err(KbuildError::Spawn)?;
        if !status.success() {
            return Err(KbuildError::Failed {
                target: target.to_owned(),
                source_tree: self.source.clone(),
                status,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_kbuild_names() {
        for arch in Arch::ALL {
            assert!(!kernel_arch(arch).is_empty());
            assert!(!source_arch(arch).is_empty());
            assert!(!config_dir(arch).is_empty());
        }
        assert_eq!(kernel_arch(Arch::Aarch64), "arm64");
        assert_eq!(source_arch(Arch::X86_64), "x86");
    }

    #[test]
    fn no_cross_compiler_for_the_host_arch() {
        let native = Arch::ALL
            .into_iter()
            .filter(|a| default_cross_compile(*a).is_none())
            .count();
        assert!(native <= 1);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(default_cross_compile(Arch::X86_64), None);
            assert_eq!(
                default_cross_compile(Arch::S390x).as_deref(),
                Some("s390x-linux-gnu-")
            );
        }
    }

    #[test]
    fn missing_source_tree_fails_with_the_target_named() {
        let dir = tempfile::tempdir().unwrap();
        let kbuild = Kbuild {
            source: dir.path().join("no-such-tree"),
            build_dir: dir.path().join("out"),
            arch: Arch::X86_64,
            cross_compile: None,
        };
        match kbuild.run("olddefconfig", None) {
            Err(KbuildError::Failed { target, .. }) => assert_eq!(target, "olddefconfig"),
            Err(KbuildError::Spawn(_)) => eprintln!("skipped: make is not installed"),
            Ok(()) => panic!("make succeeded without a source tree"),
        }
    }
}
