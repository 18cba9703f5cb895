//! Builds the dm-verity hash tree of the root filesystem with `veritysetup format`.
//!
//! Salt and UUID are fixed, so the hash device and the root hash depend only on the
//! filesystem bytes. The hash device starts with veritysetup's superblock, so the tree
//! starts at hash block 1; data and hash blocks are 4 KiB, the digest SHA-256.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::tool::{self, ToolError};

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
/// Digest algorithm.
pub const ALGORITHM: &str = "sha256";

/// Errors from formatting the hash device.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// veritysetup failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// Its output lacks a field.
    #[error("veritysetup output has no {0:?} line")]
    Output(&'static str),
}

/// What the kernel needs to set up the verity target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerityInfo {
    /// Root hash (hex).
    pub root_hash: String,
    /// Salt (hex).
    pub salt: String,
    /// Verity superblock UUID.
    pub uuid: String,
    /// Digest algorithm.
    pub hash_algorithm: String,
    /// Data block size in bytes.
    pub data_block_size: u64,
    /// Hash block size in bytes.
    pub hash_block_size: u64,
    /// Number of data blocks covered.
    pub data_blocks: u64,
    /// First hash block of the tree on the hash device (after the superblock).
    pub hash_start_block: u64,
}

/// Formats `hash` as the hash device of `data`.
pub fn format(data: &Path, hash: &Path, salt: &str, uuid: &str) -> Result<VerityInfo, VerityError> {
    let mut cmd = Command::new("veritysetup");
    cmd.arg("format")
        .arg(data)
        .arg(hash)
        .arg(format!("--salt={salt}"))
        .arg(format!("--uuid={uuid}"))
        .arg(format!("--hash={ALGORITHM}"))
        .arg(format!("--data-block-size={BLOCK}"))
        .arg(format!("--hash-block-size={BLOCK}"))
        .arg("--format=1");
    let output = tool::run("veritysetup", "cryptsetup-bin", &mut cmd)?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(VerityInfo {
        root_hash: field(&text, "Root hash")?.to_owned(),
        salt: salt.to_owned(),
        uuid: uuid.to_owned(),
        hash_algorithm: ALGORITHM.to_owned(),
        data_block_size: BLOCK,
        hash_block_size: BLOCK,
        data_blocks: field(&text, "Data blocks")?
            .parse()
            .map_err(|_| VerityError::Output("Data blocks"))?,
        hash_start_block: 1,
    })
}

fn field<'a>(text: &'a str, name: &'static str) -> Result<&'a str, VerityError> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerityError::Output(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_veritysetup_fields() {
        let text = "UUID:            \tx\nData blocks:     \t4096\nRoot hash:      \tabcd\n";
        assert_eq!(field(text, "Root hash").unwrap(), "abcd");
        assert_eq!(field(text, "Data blocks").unwrap(), "4096");
        assert!(field(text, "Salt").is_err());
    }
}
