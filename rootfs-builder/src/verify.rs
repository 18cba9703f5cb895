//! Checks a build directory against its `manifest.json`.
//!
//! Every artifact the manifest lists must exist with the listed size and SHA-256, and
//! every known artifact present in the directory must be listed. All mismatches are
//! collected and reported together, not just the first.
//!
//! Limitation: the verity root hash is trusted as recorded; the hash tree is not
//! recomputed (the image's SHA-256 already covers both partitions).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::manifest::{self, Artifact, ManifestError, ARTIFACTS};

/// One difference between the manifest and the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A listed file is absent.
    Missing(String),
    /// A listed file has another size.
    Size {
        /// File name.
        name: String,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A listed file has other contents.
    Digest {
        /// File name.
        name: String,
        /// SHA-256 in the manifest.
        expected: String,
        /// SHA-256 on disk.
        actual: String,
    },
    /// A known artifact is present but not listed.
    Unlisted(String),
    /// A listed file cannot be read.
    Unreadable(String, String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing(name) => write!(f, "{name}: missing"),
            Mismatch::Size {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: size {actual}, manifest says {expected}")
            }
            Mismatch::Digest {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: sha256 {actual}, manifest says {expected}")
            }
            Mismatch::Unlisted(name) => write!(f, "{name}: present but not in the manifest"),
            Mismatch::Unreadable(name, why) => write!(f, "{name}: cannot read ({why})"),
        }
    }
}

/// Errors from verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The manifest is missing or malformed.
    #[error("manifest")]
    Manifest(#[from] ManifestError),
    /// Files differ from the manifest.
    #[error("{} does not match its manifest:\n  {}", .0.display(), join(.1))]
    Mismatches(PathBuf, Vec<Mismatch>),
}

fn join(mismatches: &[Mismatch]) -> String {
    let lines: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    lines.join("\n  ")
}

/// Verifies `dir`; `Ok` only when everything matches.
pub fn verify_dir(dir: &Path) -> Result<(), VerifyError> {
    let manifest = manifest::load(dir)?;
    let mismatches = compare(dir, &manifest.artifacts);
    match mismatches.is_empty() {
        true => Ok(()),
        false => Err(VerifyError::Mismatches(dir.to_owned(), mismatches)),
    }
}

/// All differences between `listed` and the files in `dir`.
pub fn compare(dir: &Path, listed: &[Artifact]) -> Vec<Mismatch> {
    let mut found: Vec<Mismatch> = listed.iter().filter_map(|a| check_one(dir, a)).collect();
    for name in ARTIFACTS {
        if dir.join(name).is_file() && !listed.iter().any(|a| a.name == name) {
            found.push(Mismatch::Unlisted(name.to_owned()));
        }
    }
    found
}

fn check_one(dir: &Path, artifact: &Artifact) -> Option<Mismatch> {
    let path = dir.join(&artifact.name);
    if !path.exists() {
        return Some(Mismatch::Missing(artifact.name.clone()));
    }
    let name = artifact.name.clone();
    let (size, sha256) = match manifest::hash_file(&path) {
        Ok(found) => found,
        Err(e) => return Some(Mismatch::Unreadable(name, e.to_string())),
    };
    if size != artifact.size {
        return Some(Mismatch::Size {
            name,
            expected: artifact.size,
            actual: size,
        });
    }
    (sha256 != artifact.sha256).then(|| Mismatch::Digest {
        name,
        expected: artifact.sha256.clone(),
        actual: sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reports_every_kind_of_mismatch_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["vmlinuz", "initrd.img", "kernel.config", "hull-agent"] {
            fs::write(d.join(name), name.as_bytes()).unwrap();
        }
        let listed: Vec<Artifact> = ["vmlinuz", "initrd.img", "kernel.config"]
            .iter()
            .map(|n| manifest::artifact(d, n).unwrap())
            .chain([Artifact {
                name: "rootfs.img".into(),
                size: 1,
                sha256: "0".repeat(64),
            }])
            .collect();
        fs::write(d.join("vmlinuz"), b"vmlinuX").unwrap(); // same size, other bytes
        fs::write(d.join("initrd.img"), b"much longer now").unwrap();

        let found = compare(d, &listed);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 4, "{text:?}");
        assert!(matches!(&found[0], Mismatch::Digest { name, .. } if name == "vmlinuz"));
        assert!(matches!(&found[1], Mismatch::Size { name, .. } if name == "initrd.img"));
        assert_eq!(found[2], Mismatch::Missing("rootfs.img".into()));
        assert_eq!(found[3], Mismatch::Unlisted("hull-agent".into()));
    }
}
