//! QEMU machine profiles: per architecture, what binary to run and how to build a
//! machine (machine type and options, CPU model, console, virtio transport, the
//! device names to use). Profiles are data, kept in `qemu/<arch>.toml`.
//!
//! Lookup order for `<arch>.toml`: the directory in `HULL_QEMU_DIR`, then
//! `<prefix>/share/hull/qemu/` next to the running binary (`make install`), then the
//! copy built into the binary from the source tree's `qemu/`.
//!
//! Limitations: one profile file per architecture; unknown keys are rejected rather
//! than ignored, so a newer profile needs a newer runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable naming a directory of profile files.
pub const PROFILE_DIR_ENV: &str = "HULL_QEMU_DIR";

const BUILTIN: &[(&str, &str)] = &[
    ("x86_64", include_str!("../../qemu/x86_64.toml")),
    ("aarch64", include_str!("../../qemu/aarch64.toml")),
    ("ppc64le", include_str!("../../qemu/ppc64le.toml")),
    ("s390x", include_str!("../../qemu/s390x.toml")),
];

/// Errors loading or choosing a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile exists for the architecture.
    #[error("no QEMU profile for architecture {0:?} (known: x86_64, aarch64, ppc64le, s390x)")]
    UnknownArch(String),
    /// The profile file could not be read.
    #[error("cannot read QEMU profile {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    /// The profile file is not valid.
    #[error("invalid QEMU profile {0}")]
    Parse(String, #[source] toml::de::Error),
    /// The requested machine is not in the profile.
    #[error("machine {machine:?} is not in the {arch} profile (known: {known})")]
    UnknownMachine {
        arch: String,
        machine: String,
        known: String,
    },
}

/// All machine profiles of one architecture.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchProfile {
    /// Hull's name of the architecture.
    pub arch: String,
    /// The QEMU system emulator to run.
    pub binary: String,
    /// The machine used when none is asked for.
    pub default_machine: String,
    /// Machine profiles by name.
    pub machines: BTreeMap<String, MachineProfile>,
}

/// How virtio devices reach the guest.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// virtio-pci.
    Pci,
    /// virtio-mmio (PCI-less machines such as microvm).
    Mmio,
    /// virtio over s390 channel I/O.
    Ccw,
}

/// Which device carries the console.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    /// The machine's serial port (`-serial`): 8250, PL011, sPAPR VTY.
    Serial,
    /// The s390 SCLP console (`-device sclpconsole`).
    Sclp,
}

/// One machine type of an architecture.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MachineProfile {
    /// The `-machine` type.
    pub machine: String,
    /// Extra `-machine` options (`key=value`).
    #[serde(default)]
    pub options: Vec<String>,
    /// The `-cpu` model under KVM.
    pub cpu_kvm: String,
    /// The `-cpu` model under TCG.
    pub cpu_tcg: String,
    /// The virtio transport.
    pub transport: Transport,
    /// The console device.
    pub console: ConsoleKind,
    /// The guest's name for the console (`console=` on the command line).
    pub console_tty: String,
    /// Kernel parameters this machine needs.
    #[serde(default)]
    pub kernel_params: Vec<String>,
    /// Pass the host TSC frequency as `tsc_early_khz=` (machines without a
    /// calibration timer).
    #[serde(default)]
    pub tsc_khz_param: bool,
    /// The root device when booting the disk image.
    pub disk_root: String,
    /// QEMU device names per function.
    pub devices: DeviceNames,
}

/// QEMU device names for each function; a missing one is unavailable.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceNames {
    /// Kernel vhost-vsock (`/dev/vhost-vsock`).
    pub vhost_vsock: Option<String>,
    /// vhost-user vsock (vhost-device-vsock).
    pub vhost_user_vsock: Option<String>,
    /// vhost-user fs (virtiofsd).
    pub vhost_user_fs: Option<String>,
    /// virtio-9p.
    pub virtio_9p: Option<String>,
    /// virtio-blk.
    pub virtio_blk: Option<String>,
    /// The virtio-serial bus.
    pub virtio_serial: Option<String>,
    /// virtio-rng.
    pub virtio_rng: Option<String>,
}

impl ArchProfile {
    /// Loads the profile of `arch` (see the module docs for the lookup order).
    pub fn load(arch: &str) -> Result<Self, ProfileError> {
        let file = format!("{arch}.toml");
        for dir in search_dirs() {
            let path = dir.join(&file);
            if path.is_file() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ProfileError::Read(path.clone(), e))?;
                return Self::parse(&text, &path.display().to_string());
            }
        }
        let text = BUILTIN
            .iter()
            .find(|(name, _)| *name == arch)
            .map(|(_, text)| *text)
            .ok_or_else(|| ProfileError::UnknownArch(arch.to_string()))?;
        Self::parse(text, &format!("(built in) {file}"))
    }

    /// Parses profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProfileError> {
        toml::from_str(text).map_err(|e| ProfileError::Parse(origin.to_string(), e))
    }

    /// The machine called `name`, or the default one.
    pub fn machine(&self, name: Option<&str>) -> Result<&MachineProfile, ProfileError> {
        let name = name.unwrap_or(&self.default_machine);
        self.machines
            .get(name)
            .ok_or_else(|| ProfileError::UnknownMachine {
                arch: self.arch.clone(),
                machine: name.to_string(),
                known: self.machines.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(PROFILE_DIR_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(prefix) = install_prefix() {
        dirs.push(prefix.join("share/hull/qemu"));
    }
    dirs
}

/// `<prefix>` when the running binary is `<prefix>/bin/<name>`.
pub fn install_prefix() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    (bin.file_name()? == "bin").then(|| bin.parent().map(Path::to_path_buf))?
}

/// Hull's name for the architecture this binary runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_has_its_default_machine() {
        for (arch, text) in BUILTIN {
            let profile = ArchProfile::parse(text, arch).unwrap();
            assert_eq!(&profile.arch, arch);
            let machine = profile.machine(None).unwrap();
            assert!(machine.devices.virtio_blk.is_some(), "{arch}");
            assert!(machine.devices.virtio_9p.is_some(), "{arch}");
        }
    }

    #[test]
    fn x86_64_has_q35_and_microvm() {
        let profile = ArchProfile::load("x86_64").unwrap();
        assert_eq!(profile.binary, "qemu-system-x86_64");
        assert_eq!(
            profile.machine(Some("q35")).unwrap().transport,
            Transport::Pci
        );
        let microvm = profile.machine(Some("microvm")).unwrap();
        assert_eq!(microvm.transport, Transport::Mmio);
        assert!(microvm.tsc_khz_param);
    }

    #[test]
    fn unknown_machine_names_the_known_ones() {
        let profile = ArchProfile::load("x86_64").unwrap();
        let err = profile.machine(Some("isapc")).unwrap_err().to_string();
        assert!(
            err.contains("isapc") && err.contains("microvm, q35"),
            "{err}"
        );
    }

    #[test]
    fn unknown_arch_is_an_error() {
        assert!(matches!(
            ArchProfile::load("mips"),
            Err(ProfileError::UnknownArch(a)) if a == "mips"
        ));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = BUILTIN[0]
            .1
            .replace("cpu_tcg = \"max\"", "cpu_tcg = \"max\"\ncpu_fast = 1");
        let err = ArchProfile::parse(&text, "x").unwrap_err();
        assert!(format!("{:?}", err).contains("cpu_fast"));
    }
}
