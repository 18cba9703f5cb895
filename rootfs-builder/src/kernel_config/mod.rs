//! `hull-image kernel-config`: builds a guest kernel's `.config` from fragments and
//! proves it holds what the fragments ask for.
//!
//! Steps, in a kernel source tree with an out-of-tree build folder:
//! 1. Find the fragments (`kernel/configs/common/`, the arch's folder, the chosen
//!    feature sets, extra fragments) and merge them; an option set twice to
//!    different values is an error (see [`fragment`]).
//! 2. `make allnoconfig` with the merged fragments as `KCONFIG_ALLCONFIG`: every
//!    option not asked for is off unless something selects it, then
//!    `make olddefconfig`.
//! 3. Name the config: its hash is the sha256 of the `.config` with
//!    `CONFIG_LOCALVERSION` empty, and `CONFIG_LOCALVERSION` becomes
//!    `-hull-<first 12 hex digits>`, so `uname -r` names the config.
//! 4. Verify: every requested option must hold its requested value; misses are
//!    explained from the Kconfig files (see [`verify`], [`kconfig`]). Options on the
//!    arch's allow-list (`kernel/configs/<arch>/unavailable.txt`) may be absent.
//!
//! Limitation: the version suffix is set by editing `.config` and re-running
//! `olddefconfig`; the hash is checked again afterwards, so a kbuild that rewrote
//! more than that line would be caught, not hidden.

pub mod fragment;
pub mod kbuild;
pub mod kconfig;
pub mod verify;

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::arch::Arch;
use fragment::{FragmentError, Origin, Request, Requests};
use kbuild::{Kbuild, KbuildError};
use kconfig::{KconfigError, KconfigIndex};

/// The merged fragments, written into the build folder for `KCONFIG_ALLCONFIG`.
const ALLCONFIG_NAME: &str = "hull-fragments.config";

/// Prefix of the kernel version suffix; the config hash follows.
const LOCALVERSION_PREFIX: &str = "-hull-";

/// How many hex digits of the config hash the version suffix carries.
const SHORT_HASH_LEN: usize = 12;

/// Errors from configuring and verifying a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelConfigError {
    /// Finding, reading or merging fragments failed.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// A kbuild config target failed.
    #[error(transparent)]
    Kbuild(#[from] KbuildError),
    /// The Kconfig files could not be read to explain a miss.
    #[error(transparent)]
    Kconfig(#[from] KconfigError),
    /// A file in the build folder could not be replaced.
    #[error(transparent)]
    Atomic(#[from] crate::atomic::AtomicError),
    /// The build folder could not be created.
    #[error("cannot create {0}")]
    Write(PathBuf, #[source] io::Error),
    /// The generated `.config` could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    /// Requested options do not hold their values in the final config.
    #[error("{count} requested kernel option(s) not met in {config}:\n{report}")]
    Unmet {
        /// How many options missed.
        count: usize,
        /// The final `.config`.
        config: PathBuf,
        /// One explained block per option.
        report: String,
    },
    /// `olddefconfig` changed more than `CONFIG_LOCALVERSION` after it was set.
    #[error("the config in {0} changed after its version suffix was set")]
    HashDrift(PathBuf),
}

/// What to configure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Target architecture.
    pub arch: Arch,
    /// The unpacked kernel source tree.
    pub source: PathBuf,
    /// The out-of-tree build folder; its `.config` is replaced.
    pub build_dir: PathBuf,
    /// The folder holding `common/`, the arch folders and the feature sets.
    pub configs: PathBuf,
    /// Feature sets (folder names under `configs`), in merge order.
    pub features: Vec<String>,
    /// Extra fragment files, merged last, in order.
    pub extra_fragments: Vec<PathBuf>,
    /// Cross compiler prefix; `None` picks Debian's for a foreign arch.
    pub cross_compile: Option<String>,
}

/// A verified configuration.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The final `.config`.
    pub config: PathBuf,
    /// sha256 of the `.config` with `CONFIG_LOCALVERSION` empty, in hex.
    pub hash: String,
    /// The kernel version suffix (`-hull-<short hash>`).
    pub local_version: String,
    /// How many requested options were checked.
    pub checked: usize,
    /// Requested options absent because the arch's allow-list says so.
    pub allowed_missing: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} requested options verified, version suffix {}, config sha256 {}",
            self.config.display(),
            self.checked,
            self.local_version,
            self.hash
        )?;
        if !self.allowed_missing.is_empty() {
            write!(
                f,
                "; absent on this arch (allow-listed): {}",
                self.allowed_missing.join(" ")
            )?;
        }
        Ok(())
    }
}

/// Merges the fragments onto allnoconfig, names and verifies the result.
pub fn configure(options: &Options) -> Result<Outcome, KernelConfigError> {
    let arch_dir = kbuild::config_dir(options.arch);
    let features: Vec<String> = options
        .features
        .iter()
        .filter(|f| !f.is_empty())
        .cloned()
        .collect();
    let extra: Vec<PathBuf> = options
        .extra_fragments
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .cloned()
        .collect();
    let files = fragment::discover(&options.configs, arch_dir, &features, &extra)?;
    let requests = fragment::merge(&files)?;
    let allowed =
        fragment::read_allow_list(&options.configs.join(arch_dir).join(fragment::ALLOW_LIST))?;

    let kbuild = Kbuild {
        source: options.source.clone(),
        build_dir: options.build_dir.clone(),
        arch: options.arch,
        cross_compile: options
            .cross_compile
            .clone()
            .or_else(|| kbuild::default_cross_compile(options.arch)),
    };
    generate(&kbuild, &requests)?;
    let (hash, local_version) = name_config(&kbuild)?;

    let own = [local_version_request(&local_version)];
    check(&kbuild, &requests, &own, &allowed).map(|verification| Outcome {
        config: kbuild.config_path(),
        hash,
        local_version,
        checked: verification.checked,
        allowed_missing: verification.allowed_missing,
    })
}

/// Writes the merged fragments and runs allnoconfig and olddefconfig.
fn generate(kbuild: &Kbuild, requests: &Requests) -> Result<(), KernelConfigError> {
    let dir = &kbuild.build_dir;
    fs::create_dir_all(dir).map_err(|e| KernelConfigError::Write(dir.clone(), e))?;
    let allconfig = dir.join(ALLCONFIG_NAME);
    crate::atomic::write_file(&allconfig, requests.to_config_text().as_bytes())?;
    kbuild.run("allnoconfig", Some(&allconfig))?;
    kbuild.run("olddefconfig", None)?;
    Ok(())
}

/// Sets the version suffix from the config hash; returns the hash and the suffix.
fn name_config(kbuild: &Kbuild) -> Result<(String, String), KernelConfigError> {
    let path = kbuild.config_path();
    let hash = config_hash(&read(&path)?);
    let local_version = format!("{LOCALVERSION_PREFIX}{}", &hash[..SHORT_HASH_LEN]);
    let named = with_local_version(&read(&path)?, &local_version);
    crate::atomic::write_file(&path, named.as_bytes())?;
    kbuild.run("olddefconfig", None)?;
    if config_hash(&read(&path)?) != hash {
        return Err(KernelConfigError::HashDrift(path));
    }
    Ok((hash, local_version))
}

/// Verifies the final config, explaining misses from the Kconfig files.
fn check(
    kbuild: &Kbuild,
    requests: &Requests,
    own: &[Request],
    allowed: &BTreeSet<String>,
) -> Result<verify::Verification, KernelConfigError> {
    let path = kbuild.config_path();
    let verification = verify::verify_text(requests, own, &read(&path)?, allowed);
    if verification.unmet.is_empty() {
        return Ok(verification);
    }
    let index = KconfigIndex::load(&kbuild.source, kbuild::source_arch(kbuild.arch))?;
    Err(KernelConfigError::Unmet {
        count: verification.unmet.len(),
        config: path,
        report: verify::explain(&verification.unmet, &index),
    })
}

/// The request hull-image makes itself: the version suffix.
fn local_version_request(local_version: &str) -> Request {
    Request {
        name: "LOCALVERSION".to_owned(),
        value: format!("\"{local_version}\""),
        origin: Origin {
            path: PathBuf::from("hull-image kernel-config"),
            line: 0,
        },
    }
}

fn read(path: &Path) -> Result<String, KernelConfigError> {
    fs::read_to_string(path).map_err(|e| KernelConfigError::Read(path.to_owned(), e))
}

/// sha256 (hex) of `.config` text with `CONFIG_LOCALVERSION` emptied, so the hash
/// does not depend on the suffix derived from it.
pub fn config_hash(config: &str) -> String {
    let digest = Sha256::digest(with_local_version(config, "").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `.config` text with `CONFIG_LOCALVERSION` set to `value` (added if missing).
fn with_local_version(config: &str, value: &str) -> String {
    let line = format!("CONFIG_LOCALVERSION=\"{value}\"");
    let mut found = false;
    let mut out: Vec<String> = config
        .lines()
        .map(|l| {
            if l.starts_with("CONFIG_LOCALVERSION=") {
                found = true;
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_the_version_suffix() {
        let plain = "# header\nCONFIG_A=y\nCONFIG_LOCALVERSION=\"\"\n";
        let named = with_local_version(plain, "-hull-0123");
        assert!(
            named.contains("CONFIG_LOCALVERSION=\"-hull-0123\"\n"),
            "{named}"
        );
        assert_eq!(config_hash(plain), config_hash(&named));
        assert_ne!(config_hash(plain), config_hash("CONFIG_A=m\n"));
        assert_eq!(config_hash(plain).len(), 64);
    }

    #[test]
    fn missing_version_line_is_added() {
        let named = with_local_version("CONFIG_A=y\n", "-x");
        assert_eq!(named, "CONFIG_A=y\nCONFIG_LOCALVERSION=\"-x\"\n");
    }

    /// An unpacked kernel tree to run kbuild in: `HULL_KERNEL_TREE`, or one that
    /// `scripts/build-kernel.sh` left in the cache.
    fn kernel_tree() -> Option<PathBuf> {
        if let Some(tree) = std::env::var_os("HULL_KERNEL_TREE") {
            return Some(PathBuf::from(tree));
        }
        let cache = std::env::var_os("HULL_CACHE").unwrap_or_else(|| "/var/cache/hull".into());
        let entries = fs::read_dir(Path::new(&cache).join("kernel-src")).ok()?;
        let mut trees: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("Kconfig").is_file() && p.join("Makefile").is_file())
            .collect();
        trees.sort();
        trees.pop()
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn unmeetable_and_unknown_options_fail_naming_fragment_and_depends() {
        let Some(tree) = kernel_tree() else {
            eprintln!("skipped: no unpacked kernel tree (set HULL_KERNEL_TREE or run make kernel)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let configs = dir.path().join("configs");
        let asking = configs.join("common/fs.conf");
        write(
            &asking,
            "CONFIG_PRINTK=y\nCONFIG_EROFS_FS=y\nCONFIG_HULL_NO_SUCH_OPTION=y\n",
        );
        write(&configs.join("x86_64/base.conf"), "CONFIG_64BIT=y\n");
        let options = Options {
            arch: Arch::X86_64,
            source: tree,
            build_dir: dir.path().join("build"),
            configs,
            features: Vec::new(),
            extra_fragments: Vec::new(),
            cross_compile: None,
        };
        let err = configure(&options).unwrap_err().to_string();
        assert!(
            err.starts_with("2 requested kernel option(s) not met"),
            "{err}"
        );
        let erofs = format!("CONFIG_EROFS_FS=y asked for by {}:2", asking.display());
        assert!(err.contains(&erofs), "{err}");
        assert!(
            err.contains("fs/erofs/Kconfig:5: depends on BLOCK"),
            "{err}"
        );
        assert!(err.contains("inside if MISC_FILESYSTEMS"), "{err}");
        assert!(
            err.contains(&format!(
                "CONFIG_HULL_NO_SUCH_OPTION=y asked for by {}:3",
                asking.display()
            )),
            "{err}"
        );
        assert!(err.contains("no such option"), "{err}");
        assert!(!err.contains("CONFIG_PRINTK"), "{err}");
    }

    #[test]
    fn met_requests_name_the_kernel_version_after_the_config() {
        let Some(tree) = kernel_tree() else {
            eprintln!("skipped: no unpacked kernel tree (set HULL_KERNEL_TREE or run make kernel)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let configs = dir.path().join("configs");
        write(
            &configs.join("common/a.conf"),
            "CONFIG_PRINTK=y\n# CONFIG_SMP is not set\n",
        );
        write(&configs.join("x86_64/a.conf"), "CONFIG_64BIT=y\n");
        let options = Options {
            arch: Arch::X86_64,
            source: tree,
            build_dir: dir.path().join("build"),
            configs,
            features: Vec::new(),
            extra_fragments: Vec::new(),
            cross_compile: None,
        };
        let outcome = configure(&options).unwrap();
        assert_eq!(outcome.checked, 4);
        let config = fs::read_to_string(&outcome.config).unwrap();
        assert_eq!(config_hash(&config), outcome.hash);
        let line = format!("CONFIG_LOCALVERSION=\"-hull-{}\"", &outcome.hash[..12]);
        assert!(config.contains(&line), "{line} missing");
    }
}
