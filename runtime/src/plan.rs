//! Turns user options and an image into a [`VmSpec`]: the machine profile, the
//! accelerator (KVM if it really works, else TCG), the channel and shared-file
//! transport this host supports, and the kernel command line.
//!
//! Kernel command line, in order (later words win for repeated parameters): the
//! manifest's line for the chosen root, the machine profile's parameters, the
//! runtime's own (`console=` last so it is `/dev/console`, `panic=-1` so a panic
//! ends QEMU at once, `tsc_early_khz=` where the profile asks for it, the agent
//! address for the serial fallback), then the user's extra parameters.

use std::path::{Path, PathBuf};

use crate::host::{self, ChannelChoice};
use crate::image::{Image, ImageError, RootKind};
use crate::profile::{self, ArchProfile, MachineProfile, ProfileError};
use crate::vm::args::SERIAL_PORT_NAME;
use crate::vm::spec::{
    Accel, BootSpec, ChannelSpec, ShareKind, ShareSpec, VmSpec, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS,
};

/// Errors planning a VM.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The machine profile could not be loaded.
    #[error("QEMU profile")]
    Profile(#[from] ProfileError),
    /// The image is incomplete.
    #[error("image")]
    Image(#[from] ImageError),
    /// QEMU is not installed.
    #[error("{0} is not installed; run `make deps`")]
    NoQemu(String),
    /// Memory or vCPUs out of range.
    #[error("{0}")]
    Invalid(String),
    /// The channel asked for is not available.
    #[error("agent channel")]
    Channel(#[from] host::ChannelChoiceError),
}

/// What the user asks for.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The VM's name (the sandbox id).
    pub name: String,
    /// Guest architecture; default: the image's, else the host's.
    pub arch: Option<String>,
    /// Machine type; default: the profile's.
    pub machine: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// vCPUs.
    pub vcpus: u32,
    /// Boot the initrd or the disk image.
    pub root: RootKind,
    /// Extra kernel parameters.
    pub kernel_params: Vec<String>,
    /// Force an accelerator instead of probing.
    pub accel: Option<Accel>,
    /// Share this host directory with the guest.
    pub share_dir: Option<PathBuf>,
    /// Force a host-guest channel; `None`: as `HULL_CHANNEL` says, else auto.
    pub channel: Option<ChannelChoice>,
}

impl VmOptions {
    /// Defaults for a VM called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            arch: None,
            machine: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: DEFAULT_VCPUS,
            root: RootKind::Initrd,
            kernel_params: Vec::new(),
            accel: None,
            share_dir: None,
            channel: None,
        }
    }
}

/// A planned VM and what the host could not give it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The VM to start.
    pub spec: VmSpec,
    /// Why KVM is not used, when it is not.
    pub tcg_reason: Option<String>,
}

/// Plans a VM from `image` and `opts`, with its sockets and logs in `run_dir`.
pub fn plan(image: &Image, opts: &VmOptions, run_dir: &Path) -> Result<Plan, PlanError> {
    check_sizes(opts)?;
    let arch = opts
        .arch
        .clone()
        .or_else(|| image.arch.clone())
        .unwrap_or_else(|| profile::host_arch().to_string());
    let profile = ArchProfile::load(&arch)?;
    let machine = profile.machine(opts.machine.as_deref())?.clone();
    let qemu = host::find_qemu(&profile.binary).ok_or(PlanError::NoQemu(profile.binary.clone()))?;
    let (accel, tcg_reason) = match opts.accel {
        Some(a) => (a, None),
        None => host::choose_accel(&arch),
    };
    let choice = match opts.channel {
        Some(choice) => choice,
        None => ChannelChoice::from_env()?,
    };
    let channel = host::choose_channel(&machine, choice)?.spec;
    let share = opts.share_dir.as_ref().map(|dir| ShareSpec {
        kind: host::choose_share(&machine, accel),
        dir: dir.clone(),
    });
    let boot = boot_spec(image, opts, &machine, channel)?;
    let spec = VmSpec {
        name: opts.name.clone(),
        qemu,
        machine,
        accel,
        memory_mib: opts.memory_mib,
        vcpus: opts.vcpus,
        boot,
        channel,
        share,
        run_dir: run_dir.to_path_buf(),
    };
    Ok(Plan { spec, tcg_reason })
}

fn check_sizes(opts: &VmOptions) -> Result<(), PlanError> {
    if !(64..=1 << 20).contains(&opts.memory_mib) {
        return Err(PlanError::Invalid(format!(
            "memory {} MiB is out of range (64 MiB to 1 TiB)",
            opts.memory_mib
        )));
    }
    if !(1..=256).contains(&opts.vcpus) {
        return Err(PlanError::Invalid(format!(
            "{} vCPUs is out of range (1 to 256)",
            opts.vcpus
        )));
    }
    Ok(())
}

fn boot_spec(
    image: &Image,
    opts: &VmOptions,
    machine: &MachineProfile,
    channel: ChannelSpec,
) -> Result<BootSpec, PlanError> {
    let root = image.root_file(opts.root)?;
    let (initrd, disk) = match opts.root {
        RootKind::Initrd => (Some(root), None),
        RootKind::Disk => (None, Some(root)),
    };
    let mut words: Vec<String> = image
        .cmdline(opts.root)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if opts.root == RootKind::Disk && !words.iter().any(|w| w.starts_with("root=")) {
        words.push(format!("root={}", machine.disk_root));
        words.push("ro".into());
    }
    words.extend(runtime_params(machine, channel));
    words.extend(opts.kernel_params.iter().cloned());
    Ok(BootSpec {
        kernel: image.kernel(),
        initrd,
        disk,
        cmdline: words.join(" "),
    })
}

/// The kernel parameters the runtime itself needs.
pub fn runtime_params(machine: &MachineProfile, channel: ChannelSpec) -> Vec<String> {
    let mut words = machine.kernel_params.clone();
    words.push(format!("console={}", machine.console_tty));
    words.push("panic=-1".into());
    if machine.tsc_khz_param {
        if let Some(khz) = host::tsc_khz() {
            words.push(format!("tsc_early_khz={khz}"));
        }
    }
    if channel == ChannelSpec::Serial {
        words.push(format!(
            "agent.server_addr=serial:///dev/virtio-ports/{SERIAL_PORT_NAME}"
        ));
    }
    words
}

/// How a share is mounted in the guest, for messages.
pub fn share_name(kind: ShareKind) -> &'static str {
    match kind {
        ShareKind::VirtioFs => "virtio-fs",
        ShareKind::NineP => "virtio-9p",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(manifest: &str, disk: bool) -> (tempfile::TempDir, Image) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["vmlinuz", "initrd.img"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        if disk {
            std::fs::write(dir.path().join("rootfs.img"), b"x").unwrap();
        }
        std::fs::write(dir.path().join("manifest.json"), manifest).unwrap();
        let image = Image::open(Some(dir.path())).unwrap();
        (dir, image)
    }

    const MANIFEST: &str = r#"{"arch": "x86_64", "cmdline": {
        "initrd": "console=hvc0 console=ttyS0 quiet panic=1",
        "disk": "console=hvc0 quiet root=/dev/vda1 rootfstype=ext4 ro"}}"#;

    fn tcg(name: &str) -> VmOptions {
        let mut o = VmOptions::new(name);
        o.accel = Some(Accel::Tcg);
        o
    }

    #[test]
    fn initrd_command_line_puts_ours_after_the_manifest() {
        let (_d, img) = image(MANIFEST, false);
        let mut opts = tcg("t1");
        opts.kernel_params = vec!["agent.log=debug".into()];
        let Ok(plan) = plan(&img, &opts, Path::new("/run/hull/t1")) else {
            return; // QEMU for x86_64 is not installed on this host.
        };
        let line = &plan.spec.boot.cmdline;
        assert!(
            line.starts_with(
                "console=hvc0 console=ttyS0 quiet panic=1 reboot=k console=ttyS0 panic=-1"
            ),
            "{line}"
        );
        assert!(line.ends_with("agent.log=debug"));
        assert_eq!(plan.spec.boot.disk, None);
    }

    #[test]
    fn disk_boot_uses_the_disk_line() {
        let (_d, img) = image(MANIFEST, true);
        let mut opts = tcg("t2");
        opts.root = RootKind::Disk;
        opts.machine = Some("microvm".into());
        let Ok(plan) = plan(&img, &opts, Path::new("/r")) else {
            return;
        };
        let line = &plan.spec.boot.cmdline;
        assert!(line.contains("root=/dev/vda1 rootfstype=ext4 ro"), "{line}");
        assert!(line.contains("tsc_early_khz="), "{line}");
        assert!(plan.spec.boot.initrd.is_none());
    }

    #[test]
    fn bad_sizes_are_named() {
        let (_d, img) = image(MANIFEST, false);
        let mut opts = tcg("t3");
        opts.memory_mib = 8;
        let err = plan(&img, &opts, Path::new("/r")).unwrap_err().to_string();
        assert!(err.contains("memory 8 MiB"), "{err}");
        opts.memory_mib = 256;
        opts.vcpus = 0;
        let err = plan(&img, &opts, Path::new("/r")).unwrap_err().to_string();
        assert!(err.contains("0 vCPUs"), "{err}");
    }

    #[test]
    fn serial_fallback_tells_the_agent_where_to_listen() {
        let m = ArchProfile::load("s390x")
            .unwrap()
            .machine(None)
            .unwrap()
            .clone();
        let words = runtime_params(&m, ChannelSpec::Serial);
        assert!(words.contains(&"console=ttysclp0".to_string()));
        assert!(words
            .iter()
            .any(|w| w.starts_with("agent.server_addr=serial://")));
    }
}
