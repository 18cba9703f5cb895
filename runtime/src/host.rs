//! What this host offers a VM: KVM or not, kernel vhost-vsock or the
//! vhost-device-vsock daemon, virtiofsd, QEMU and its version, the TSC
//! frequency. Used to choose a VM's accelerator, channel and shared-file
//! transport, and by `hull check`.
//!
//! The channel can be forced with `HULL_CHANNEL=auto|vsock|serial` (or the
//! `--channel` option of the verbs that boot), e.g. to test the virtio-serial
//! fallback on a host that has a vsock back end.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use crate::kvm::{self, KvmError};
use crate::profile::MachineProfile;
use crate::vm::helpers::{VHOST_DEVICE_VSOCK, VIRTIOFSD};
use crate::vm::process::find_program;
use crate::vm::spec::{Accel, ChannelSpec, ShareKind};

/// The kernel vhost-vsock device.
pub const VHOST_VSOCK_DEVICE: &str = "/dev/vhost-vsock";

/// The guest CID used with a per-VM vsock back end (each VM has its own, so
/// every guest may use the same one).
pub const HYBRID_GUEST_CID: u32 = 3;

/// Whether the kernel's vhost-vsock device can be opened.
pub fn vhost_vsock_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(VHOST_VSOCK_DEVICE)
        .is_ok()
}

/// The accelerator for a guest of `arch`: KVM when the probe passes and the
/// guest is of the host's architecture, TCG otherwise (with the reason).
pub fn choose_accel(arch: &str) -> (Accel, Option<String>) {
    if arch != crate::profile::host_arch() {
        return (
            Accel::Tcg,
            Some(format!(
                "{arch} guest on a {} host",
                crate::profile::host_arch()
            )),
        );
    }
    match kvm::probe() {
        Ok(()) => (Accel::Kvm, None),
        Err(KvmError::NoDevice) => (Accel::Tcg, Some("no /dev/kvm".into())),
        Err(e) => (Accel::Tcg, Some(format!("KVM unusable: {e}"))),
    }
}

/// The environment variable that forces the host-guest channel.
pub const CHANNEL_ENV: &str = "HULL_CHANNEL";

/// Which host-guest channel is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelChoice {
    /// The best this host and machine offer.
    #[default]
    Auto,
    /// vsock (kernel vhost-vsock, else vhost-device-vsock), or fail.
    Vsock,
    /// The virtio-serial port, even where vsock would work.
    Serial,
}

impl ChannelChoice {
    /// The choice in [`CHANNEL_ENV`]; `Auto` when it is unset or empty.
    pub fn from_env() -> Result<Self, ChannelChoiceError> {
        match std::env::var(CHANNEL_ENV) {
            Ok(value) if !value.is_empty() => {
                value.parse().map_err(|_| ChannelChoiceError::BadEnv(value))
            }
            _ => Ok(Self::Auto),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Vsock => "vsock",
            Self::Serial => "serial",
        }
    }
}

impl fmt::Display for ChannelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChannelChoice {
    type Err = ChannelChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "vsock" => Ok(Self::Vsock),
            "serial" => Ok(Self::Serial),
            other => Err(ChannelChoiceError::Unknown(other.to_string())),
        }
    }
}

/// Errors choosing the host-guest channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelChoiceError {
    /// Not a channel name.
    #[error("unknown channel {0:?}: use auto, vsock or serial")]
    Unknown(String),
    /// `HULL_CHANNEL` holds something else than a channel name.
    #[error("{CHANNEL_ENV}={0:?} is not a channel: use auto, vsock or serial")]
    BadEnv(String),
    /// vsock was asked for but neither back end works here.
    #[error(
        "vsock asked for, but {VHOST_VSOCK_DEVICE} is not usable and \
         {VHOST_DEVICE_VSOCK} is not installed (`make deps` installs it)"
    )]
    NoVsock,
    /// vsock was asked for but the machine has no vsock device.
    #[error("vsock asked for, but machine {0} has no vsock device")]
    NoVsockDevice(String),
    /// The serial port was asked for but the machine has no virtio-serial device.
    #[error("serial asked for, but machine {0} has no virtio-serial device")]
    NoSerialDevice(String),
}

/// A chosen channel, and why when it is a fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPick {
    /// The channel.
    pub spec: ChannelSpec,
    /// What made `Auto` fall back to the serial port; `None` otherwise.
    pub fallback: Option<String>,
}

/// The channel for `choice`: with `Auto`, kernel vhost-vsock, else
/// vhost-device-vsock, else virtio-serial, each only when the machine has the
/// device for it.
pub fn choose_channel(
    machine: &MachineProfile,
    choice: ChannelChoice,
) -> Result<ChannelPick, ChannelChoiceError> {
    let spec = match choice {
        ChannelChoice::Auto => return Ok(auto_channel(machine)),
        ChannelChoice::Vsock => vsock_channel(machine)?.ok_or(ChannelChoiceError::NoVsock)?,
        ChannelChoice::Serial if machine.devices.virtio_serial.is_none() => {
            return Err(ChannelChoiceError::NoSerialDevice(machine.machine.clone()))
        }
        ChannelChoice::Serial => ChannelSpec::Serial,
    };
    Ok(ChannelPick {
        spec,
        fallback: None,
    })
}

fn auto_channel(machine: &MachineProfile) -> ChannelPick {
    let (spec, fallback) = match vsock_channel(machine) {
        Ok(Some(spec)) => (spec, None),
        Ok(None) => (
            ChannelSpec::Serial,
            Some("no usable vsock back end on this host".into()),
        ),
        Err(_) => (
            ChannelSpec::Serial,
            Some(format!("machine {} has no vsock device", machine.machine)),
        ),
    };
    ChannelPick { spec, fallback }
}

/// The vsock channel this host and machine allow, if any; an error when the
/// machine has no vsock device at all.
fn vsock_channel(machine: &MachineProfile) -> Result<Option<ChannelSpec>, ChannelChoiceError> {
    let d = &machine.devices;
    if d.vhost_vsock.is_none() && d.vhost_user_vsock.is_none() {
        return Err(ChannelChoiceError::NoVsockDevice(machine.machine.clone()));
    }
    if d.vhost_vsock.is_some() && vhost_vsock_usable() {
        return Ok(Some(ChannelSpec::VhostVsock { cid: random_cid() }));
    }
    if d.vhost_user_vsock.is_some() && find_program(VHOST_DEVICE_VSOCK).is_some() {
        return Ok(Some(ChannelSpec::HybridVsock {
            cid: HYBRID_GUEST_CID,
        }));
    }
    Ok(None)
}

/// The shared-file transport: virtio-fs when virtiofsd is installed, the machine
/// has the device and the guest runs under KVM, else 9p.
///
/// Not virtio-fs under TCG: virtiofsd writes file data straight into guest memory,
/// behind the emulator's back, so QEMU keeps running code it translated from what
/// that memory held before. A binary read from the share into reused page-cache
/// pages then jumps into the middle of instructions (SIGSEGV, SIGILL).
pub fn choose_share(machine: &MachineProfile, accel: Accel) -> ShareKind {
    let virtio_fs = machine.devices.vhost_user_fs.is_some() && find_program(VIRTIOFSD).is_some();
    if virtio_fs && accel == Accel::Kvm {
        ShareKind::VirtioFs
    } else {
        ShareKind::NineP
    }
}

/// A guest CID for kernel vsock, unlikely to collide (3 and up are free for
/// guests; the kernel refuses a CID already in use).
fn random_cid() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    3 + u32::from_ne_bytes(bytes) % 0x7fff_0000
}

/// The version line of a QEMU binary (`QEMU emulator version 10.0.2 ...`).
pub fn qemu_version(qemu: &Path) -> Option<String> {
    let out = Command::new(qemu).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim_start_matches("QEMU emulator version ").to_string())
}

/// The QEMU binary `name`, if installed.
pub fn find_qemu(name: &str) -> Option<PathBuf> {
    find_program(name)
}

/// The host's TSC frequency in kHz, for `tsc_early_khz=`: from CPUID leaf 0x15,
/// the hypervisor timing leaf 0x40000010, or `/proc/cpuinfo`.
pub fn tsc_khz() -> Option<u64> {
    cpuid_tsc_khz().or_else(cpuinfo_khz)
}

#[cfg(target_arch = "x86_64")]
fn cpuid_tsc_khz() -> Option<u64> {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86_64 CPU; leaves are checked against the maximum
    // before use, and hypervisor leaves read as zero on bare metal.
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let l = __cpuid(0x15);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax) / 1000);
        }
    }
    let hv_max = __cpuid(0x4000_0000).eax;
    if hv_max >= 0x4000_0010 {
        let khz = __cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some(u64::from(khz));
        }
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_tsc_khz() -> Option<u64> {
    None
}

fn cpuinfo_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ArchProfile;

    #[test]
    fn foreign_guests_use_tcg() {
        let other = if crate::profile::host_arch() == "s390x" {
            "x86_64"
        } else {
            "s390x"
        };
        let (accel, why) = choose_accel(other);
        assert_eq!(accel, Accel::Tcg);
        assert!(why.unwrap().contains("guest on a"));
    }

    #[test]
    fn without_vsock_devices_the_channel_is_serial() {
        let mut m = ArchProfile::load("x86_64")
            .unwrap()
            .machine(None)
            .unwrap()
            .clone();
        m.devices.vhost_vsock = None;
        m.devices.vhost_user_vsock = None;
        let pick = choose_channel(&m, ChannelChoice::Auto).unwrap();
        assert_eq!(pick.spec, ChannelSpec::Serial);
        let why = pick.fallback.unwrap();
        assert!(why.contains("has no vsock device"), "{why}");
        let err = choose_channel(&m, ChannelChoice::Vsock).unwrap_err();
        assert!(err.to_string().contains("has no vsock device"), "{err}");
        assert_eq!(choose_share(&m, Accel::Tcg), ShareKind::NineP);
        m.devices.vhost_user_fs = None;
        assert_eq!(choose_share(&m, Accel::Kvm), ShareKind::NineP);
    }

    fn x86_q35() -> MachineProfile {
        ArchProfile::load("x86_64")
            .unwrap()
            .machine(Some("q35"))
            .unwrap()
            .clone()
    }

    #[test]
    fn serial_can_be_forced_where_the_machine_has_the_port() {
        let mut m = x86_q35();
        let pick = choose_channel(&m, ChannelChoice::Serial).unwrap();
        assert_eq!(pick.spec, ChannelSpec::Serial);
        assert_eq!(pick.fallback, None);
        m.devices.virtio_serial = None;
        let err = choose_channel(&m, ChannelChoice::Serial).unwrap_err();
        assert!(err.to_string().contains("no virtio-serial device"), "{err}");
    }

    #[test]
    fn forced_vsock_is_vsock_or_an_error() {
        let m = x86_q35();
        match choose_channel(&m, ChannelChoice::Vsock) {
            Ok(pick) => assert_ne!(pick.spec, ChannelSpec::Serial),
            Err(e) => assert!(matches!(e, ChannelChoiceError::NoVsock), "{e}"),
        }
    }

    #[test]
    fn channel_names_parse() {
        assert_eq!(
            "serial".parse::<ChannelChoice>().unwrap(),
            ChannelChoice::Serial
        );
        assert_eq!(
            "vsock".parse::<ChannelChoice>().unwrap(),
            ChannelChoice::Vsock
        );
        assert_eq!(
            "auto".parse::<ChannelChoice>().unwrap(),
            ChannelChoice::Auto
        );
        let err = "tcp".parse::<ChannelChoice>().unwrap_err().to_string();
        assert_eq!(err, "unknown channel \"tcp\": use auto, vsock or serial");
    }

    #[test]
    fn random_cids_are_guest_cids() {
        for _ in 0..100 {
            assert!(random_cid() >= 3);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tsc_frequency_is_plausible() {
        let khz = tsc_khz().unwrap();
        assert!((100_000..10_000_000).contains(&khz), "{khz}");
    }
}
