//! `manifest.json`: what a build directory holds and how to boot it.
//!
//! Contents, in this key order: `schema_version`; `arch`; `source_date_epoch`;
//! `artifacts` (name, size, sha256 of each of [`ARTIFACTS`] present, by name);
//! `agent.version` and where it was read from; `kernel.release` and
//! `kernel.config_sha256`; the suggested kernel command lines for an initrd boot and a
//! disk boot; the disk's filesystem and layout; the dm-verity root hash when present.
//! The bytes are deterministic: fixed key order, sorted artifacts, no timestamps
//! beyond the build epoch.
//!
//! Agent version, first found of: an `agent.version` file next to `hull-agent`
//! (written by the build); a `HULL_AGENT_VERSION=<version>` marker string inside the
//! agent binary (works across architectures, since nothing is run); the workspace
//! version this tool was built with (agent and tool share it).
//!
//! Limitation: the disk command line names `/dev/vda1` (virtio-blk); other disk
//! attachments (`/dev/pmem0p1`, `/dev/sda1`) need the root argument changed, or
//! `root=PARTUUID=` from the disk description.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::arch::Arch;
use crate::atomic::{self, AtomicError};
use crate::disk::{self, DiskInfo, FsKind};
use crate::epoch::{self, EpochError};
use crate::jsonpath;

/// Version of this schema.
pub const SCHEMA_VERSION: u32 = 1;
/// File name of the manifest in a build directory.
pub const FILE: &str = "manifest.json";
/// The artifacts a manifest may describe, in the order it lists them.
pub const ARTIFACTS: [&str; 6] = [
    "hull-agent",
    "initrd.img",
    "kernel.config",
    "rootfs.img",
    "vmlinux",
    "vmlinuz",
];
/// The marker the agent binary may carry before its version.
pub const AGENT_VERSION_MARKER: &[u8] = b"HULL_AGENT_VERSION=";
const AGENT_VERSION_FILE: &str = "agent.version";
const KERNEL_RELEASE_FILE: &str = "kernel.release";
/// Kernel arguments common to every boot: quiet, and reboot (QEMU exits) on panic.
const COMMON_ARGS: &str = "quiet panic=1";
/// Name of the dm device set up for a verity root.
const VERITY_DM_NAME: &str = "hull-root";

/// One file of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// File name in the build directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lower-case hex.
    pub sha256: String,
}

/// The agent's version and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// The version string.
    pub version: String,
    /// `agent.version`, `binary` or `workspace`.
    pub source: String,
}

/// The kernel's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInfo {
    /// `uname -r` of the built kernel, from `kernel.release`.
    pub release: Option<String>,
    /// SHA-256 of `kernel.config`.
    pub config_sha256: Option<String>,
}

/// Suggested kernel command lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cmdline {
    /// For booting `initrd.img`.
    pub initrd: Option<String>,
    /// For booting `rootfs.img` attached as the first virtio-blk disk.
    pub disk: Option<String>,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Target architecture.
    pub arch: String,
    /// `SOURCE_DATE_EPOCH` of the build.
    pub source_date_epoch: u64,
    /// Files, sorted by name.
    pub artifacts: Vec<Artifact>,
    /// The agent.
    pub agent: AgentInfo,
    /// The kernel, when one was built.
    pub kernel: Option<KernelInfo>,
    /// Kernel command lines.
    pub cmdline: Cmdline,
    /// The disk image's layout, when one was built.
    pub disk: Option<DiskInfo>,
    /// dm-verity root hash of the disk's root filesystem.
    pub verity_root_hash: Option<String>,
}

/// Errors from writing or reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The build directory does not exist.
    #[error("build directory {0} does not exist")]
    NoDir(PathBuf),
    /// `SOURCE_DATE_EPOCH` is malformed.
    #[error("build epoch")]
    Epoch(#[from] EpochError),
    /// A file of the build could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    /// The disk image has no readable description next to it.
    #[error("cannot read the disk description {0} (rebuild the disk image)")]
    DiskInfo(PathBuf, #[source] io::Error),
    /// The disk image was built for another architecture.
    #[error("disk image was built for {found}, not {arch}")]
    DiskArch {
        /// The image's arch.
        found: String,
        /// The requested arch.
        arch: Arch,
    },
    /// The manifest is not valid JSON or has the wrong shape.
    #[error("{file}: malformed at field {field}")]
    Malformed {
        /// The manifest path.
        file: PathBuf,
        /// Path of the offending field.
        field: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A field holds an unacceptable value.
    #[error("{file}: field {field}: {problem}")]
    Invalid {
        /// The manifest path.
        file: PathBuf,
        /// Path of the offending field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// Writing the manifest failed.
    #[error("output {0}")]
    Output(PathBuf, #[source] AtomicError),
}

/// Describes `dir` (a `build/<arch>` directory) and writes its `manifest.json`.
pub fn write(dir: &Path, arch: Arch) -> Result<Manifest, ManifestError> {
    let manifest = describe(dir, arch)?;
    let path = dir.join(FILE);
    atomic::write_file(&path, &to_bytes(&manifest)).map_err(|e| ManifestError::Output(path, e))?;
    info!(dir = %dir.display(), artifacts = manifest.artifacts.len(), "manifest written");
    Ok(manifest)
}

/// The manifest's bytes: pretty JSON with a final newline.
pub fn to_bytes(manifest: &Manifest) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("Manifest serializes");
    bytes.push(b'\n');
    bytes
}

/// Builds the manifest of `dir` without writing it.
pub fn describe(dir: &Path, arch: Arch) -> Result<Manifest, ManifestError> {
    if !dir.is_dir() {
        return Err(ManifestError::NoDir(dir.to_owned()));
    }
    let artifacts = ARTIFACTS
        .iter()
        .filter(|name| dir.join(name).is_file())
        .map(|name| artifact(dir, name))
        .collect::<Result<Vec<_>, _>>()?;
    let has = |name: &str| artifacts.iter().any(|a| a.name == name);
    let disk = match has("rootfs.img") {
        true => Some(disk_info(dir, arch)?),
        false => None,
    };
    let cmdline = Cmdline {
        initrd: has("initrd.img").then(|| initrd_cmdline(arch)),
        disk: disk.as_ref().map(|d| disk_cmdline(arch, d)),
    };
    Ok(Manifest {
        schema_version: SCHEMA_VERSION,
        arch: arch.name().to_owned(),
        source_date_epoch: epoch::from_env()?,
        agent: agent_info(dir)?,
        kernel: kernel_info(dir, &artifacts)?,
        verity_root_hash: disk
            .as_ref()
            .and_then(|d| d.verity.as_ref())
            .map(|v| v.tree.root_hash.clone()),
        artifacts,
        cmdline,
        disk,
    })
}

/// Size and SHA-256 of one file.
pub fn artifact(dir: &Path, name: &str) -> Result<Artifact, ManifestError> {
    let path = dir.join(name);
    let (size, sha256) = hash_file(&path).map_err(|e| ManifestError::Read(path, e))?;
    Ok(Artifact {
        name: name.to_owned(),
        size,
        sha256,
    })
}

/// Streams a file through SHA-256; returns its size and hex digest.
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn disk_info(dir: &Path, arch: Arch) -> Result<DiskInfo, ManifestError> {
    let image = dir.join("rootfs.img");
    let info =
        disk::load_info(&image).map_err(|e| ManifestError::DiskInfo(disk::info_path(&image), e))?;
    if info.arch != arch.name() {
        return Err(ManifestError::DiskArch {
            found: info.arch,
            arch,
        });
    }
    Ok(info)
}

fn agent_info(dir: &Path) -> Result<AgentInfo, ManifestError> {
    let file = dir.join(AGENT_VERSION_FILE);
    if file.is_file() {
        let text = fs::read_to_string(&file).map_err(|e| ManifestError::Read(file.clone(), e))?;
        let version = text.trim().to_owned();
        if !version.is_empty() && !version.contains(char::is_whitespace) {
            return Ok(AgentInfo {
                version,
                source: AGENT_VERSION_FILE.to_owned(),
            });
        }
    }
    let binary = dir.join("hull-agent");
    if binary.is_file() {
        let bytes = fs::read(&binary).map_err(|e| ManifestError::Read(binary.clone(), e))?;
        if let Some(version) = find_version_marker(&bytes) {
            return Ok(AgentInfo {
                version,
                source: "binary".to_owned(),
            });
        }
    }
    Ok(AgentInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        source: "workspace".to_owned(),
    })
}

/// The version after [`AGENT_VERSION_MARKER`] in a binary, if present.
pub fn find_version_marker(bytes: &[u8]) -> Option<String> {
    let start = bytes
        .windows(AGENT_VERSION_MARKER.len())
        .position(|w| w == AGENT_VERSION_MARKER)?
        + AGENT_VERSION_MARKER.len();
    let version: Vec<u8> = bytes[start..]
        .iter()
        .take(64)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_'))
        .copied()
        .collect();
    (!version.is_empty()).then(|| String::from_utf8_lossy(&version).into_owned())
}

fn kernel_info(dir: &Path, artifacts: &[Artifact]) -> Result<Option<KernelInfo>, ManifestError> {
    let release_file = dir.join(KERNEL_RELEASE_FILE);
    let release = match release_file.is_file() {
        true => Some(
            fs::read_to_string(&release_file)
                .map_err(|e| ManifestError::Read(release_file.clone(), e))?
                .trim()
                .to_owned(),
        ),
        false => None,
    };
    let config_sha256 = artifacts
        .iter()
        .find(|a| a.name == "kernel.config")
        .map(|a| a.sha256.clone());
    Ok(
        (release.is_some() || config_sha256.is_some()).then_some(KernelInfo {
            release,
            config_sha256,
        }),
    )
}

/// Command line for an initrd boot: the kernel runs `/init` from the initramfs.
pub fn initrd_cmdline(arch: Arch) -> String {
    format!("{} {COMMON_ARGS}", arch.consoles())
}

/// Command line for a disk boot from `/dev/vda`, through dm-verity when present.
pub fn disk_cmdline(arch: Arch, disk: &DiskInfo) -> String {
    let fs = match disk.fs {
        FsKind::Ext4 => "ext4",
        FsKind::Erofs => "erofs",
    };
    let base = format!("{} {COMMON_ARGS}", arch.consoles());
    let tail = format!("rootfstype={fs} ro rootwait init=/sbin/init");
    let Some(verity) = &disk.verity else {
        return format!("{base} root=/dev/vda{} {tail}", disk.root.number);
    };
    let t = &verity.tree;
    let (data, hash) = (
        format!("/dev/vda{}", disk.root.number),
        format!("/dev/vda{}", verity.partition.number),
    );
    let sectors = t.data_blocks * t.data_block_size / 512;
    let table = format!(
        "0 {sectors} verity 1 {data} {hash} {} {} {} {} {} {} {}",
        t.data_block_size,
        t.hash_block_size,
        t.data_blocks,
        t.hash_start_block,
        t.hash_algorithm,
        t.root_hash,
        t.salt
    );
    format!(
        "{base} dm-mod.create=\"{VERITY_DM_NAME},,,ro,{table}\" dm-mod.waitfor={data},{hash} \
         root=/dev/dm-0 {tail}"
    )
}

/// Reads and checks `dir/manifest.json`; errors name the offending field.
pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
    let file = dir.join(FILE);
    let text = fs::read_to_string(&file).map_err(|e| ManifestError::Read(file.clone(), e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|source| {
        let offset = jsonpath::offset_of(&text, source.line(), source.column());
        let field = jsonpath::path_at(&text, offset);
        ManifestError::Malformed {
            file: file.clone(),
            field,
            source,
        }
    })?;
    check(&manifest).map_err(|(field, problem)| ManifestError::Invalid {
        file,
        field,
        problem,
    })?;
    Ok(manifest)
}

/// Checks values the JSON shape cannot: version, arch, names and digests.
fn check(m: &Manifest) -> Result<(), (String, String)> {
    if m.schema_version != SCHEMA_VERSION {
        let problem = format!(
            "unsupported version {} (expected {SCHEMA_VERSION})",
            m.schema_version
        );
        return Err(("schema_version".into(), problem));
    }
    if m.arch.parse::<Arch>().is_err() {
        return Err(("arch".into(), format!("unknown arch {:?}", m.arch)));
    }
    let mut seen = Vec::new();
    for (i, a) in m.artifacts.iter().enumerate() {
        if !ARTIFACTS.contains(&a.name.as_str()) || seen.contains(&&a.name) {
            return Err((
                format!("artifacts[{i}].name"),
                format!("unexpected or repeated name {:?}", a.name),
            ));
        }
        seen.push(&a.name);
        if a.sha256.len() != 64
            || !a
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err((
                format!("artifacts[{i}].sha256"),
                "not a lower-case hex SHA-256".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_version_marker() {
        let mut bin = b"\x7fELF....".to_vec();
        bin.extend(b"HULL_AGENT_VERSION=0.1.0-rc.1+g1234\0trailing");
        assert_eq!(
            find_version_marker(&bin).as_deref(),
            Some("0.1.0-rc.1+g1234")
        );
        assert_eq!(find_version_marker(b"HULL_AGENT_VERSION=\0"), None);
        assert_eq!(find_version_marker(b"nothing"), None);
    }

    #[test]
    fn initrd_cmdline_names_the_consoles() {
        let line = initrd_cmdline(Arch::Aarch64);
        assert_eq!(line, "console=hvc0 console=ttyAMA0 quiet panic=1");
    }

    fn disk(verity: bool) -> DiskInfo {
        let part = |number, offset, size| disk::PartitionInfo {
            number,
            partuuid: "p".into(),
            offset,
            size,
        };
        DiskInfo {
            arch: "x86_64".into(),
            fs: FsKind::Ext4,
            fs_uuid: "u".into(),
            disk_size: 8 << 20,
            root: part(1, 2 << 20, 4 << 20),
            verity: verity.then(|| disk::VerityPartition {
                partition: part(2, 6 << 20, 1 << 20),
                tree: crate::disk::verity::VerityInfo {
                    root_hash: "ab".into(),
                    salt: "cd".into(),
                    uuid: "u".into(),
                    hash_algorithm: "sha256".into(),
                    data_block_size: 4096,
                    hash_block_size: 4096,
                    data_blocks: 1024,
                    hash_start_block: 1,
                },
            }),
        }
    }

    #[test]
    fn disk_cmdline_plain_and_verity() {
        let plain = disk_cmdline(Arch::X86_64, &disk(false));
        assert!(
            plain.ends_with("root=/dev/vda1 rootfstype=ext4 ro rootwait init=/sbin/init"),
            "{plain}"
        );
        let verity = disk_cmdline(Arch::X86_64, &disk(true));
        let table = "0 8192 verity 1 /dev/vda1 /dev/vda2 4096 4096 1024 1 sha256 ab cd";
        assert!(
            verity.contains(&format!("dm-mod.create=\"hull-root,,,ro,{table}\"")),
            "{verity}"
        );
        assert!(
            verity.contains("dm-mod.waitfor=/dev/vda1,/dev/vda2 root=/dev/dm-0"),
            "{verity}"
        );
    }
}
