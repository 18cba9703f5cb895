//! What a VM is made of: the resolved description the launcher turns into a QEMU
//! command line. It is plain data (serialisable) so that a sandbox's state file
//! records exactly what was started.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::profile::MachineProfile;

/// Memory given to a VM when nothing else is asked for, in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// vCPUs given to a VM when nothing else is asked for.
pub const DEFAULT_VCPUS: u32 = 1;

/// The accelerator QEMU runs the guest with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How the host reaches the agent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChannelSpec {
    /// The kernel's vhost-vsock: AF_VSOCK to the guest CID.
    VhostVsock { cid: u32 },
    /// A vhost-device-vsock backend, reached through a Unix socket with the hybrid
    /// `CONNECT <port>` handshake.
    HybridVsock { cid: u32 },
    /// A virtio-serial port carrying the agent's stream, reached through a Unix
    /// socket QEMU listens on.
    Serial,
}

/// How the sandbox's shared directory reaches the guest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ShareKind {
    /// virtio-fs through a virtiofsd per VM.
    VirtioFs,
    /// virtio-9p served by QEMU itself.
    NineP,
}

/// The shared directory of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareSpec {
    /// The transport.
    pub kind: ShareKind,
    /// The host directory.
    pub dir: PathBuf,
}

/// The mount tag (virtio-fs tag, 9p mount tag) of the shared directory.
pub const SHARE_TAG: &str = "kataShared";

/// What the guest boots from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootSpec {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initrd, if any.
    pub initrd: Option<PathBuf>,
    /// A read-only root disk, if any.
    pub disk: Option<PathBuf>,
    /// The complete kernel command line.
    pub cmdline: String,
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VmSpec {
    /// A short name (the sandbox id), shown in the process list.
    pub name: String,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The machine profile.
    pub machine: MachineProfile,
    /// The accelerator.
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Kernel, initrd, disk and command line.
    pub boot: BootSpec,
    /// The host-guest channel.
    pub channel: ChannelSpec,
    /// The shared directory, if any.
    pub share: Option<ShareSpec>,
    /// The directory for this VM's sockets and console log.
    pub run_dir: PathBuf,
}

/// File names inside a VM's run directory.
#[derive(Debug, Clone)]
pub struct RunPaths {
    dir: PathBuf,
}

impl RunPaths {
    /// Paths inside `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The serial console log.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// QEMU's QMP socket.
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// The vhost-user socket between QEMU and vhost-device-vsock.
    pub fn vhost_vsock(&self) -> PathBuf {
        self.dir.join("vhost-vsock.sock")
    }

    /// The hybrid vsock socket the host connects to.
    pub fn hybrid_vsock(&self) -> PathBuf {
        self.dir.join("vsock.sock")
    }

    /// The Unix socket QEMU listens on for the virtio-serial agent port. Only
    /// the sandbox supervisor connects to it (once, for the VM's life).
    pub fn serial_agent(&self) -> PathBuf {
        self.dir.join("agent-serial.sock")
    }

    /// The supervisor's agent socket for the serial channel: each connection
    /// is a ttrpc connection to the agent, multiplexed onto the serial port
    /// (see `supervisor::mux`).
    pub fn agent_mux(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// The vhost-user socket between QEMU and virtiofsd.
    pub fn virtiofsd(&self) -> PathBuf {
        self.dir.join("virtiofsd.sock")
    }

    /// QEMU's own messages (stderr).
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }

    /// The log of the helper daemons (vhost-device-vsock, virtiofsd).
    pub fn helpers_log(&self) -> PathBuf {
        self.dir.join("helpers.log")
    }
}

impl VmSpec {
    /// The paths inside this VM's run directory.
    pub fn paths(&self) -> RunPaths {
        RunPaths::new(&self.run_dir)
    }
}
