//! Turns a [`VmSpec`] into QEMU's command line. Pure: no files are touched, so
//! every architecture's command line is unit-tested on any host.
//!
//! The guest starts paused (`-S`): the launcher connects to QMP first and then
//! resumes it, so no event (an early panic, a power-off) can be missed.

use std::path::Path;

use crate::profile::{ConsoleKind, MachineProfile};
use crate::vm::spec::{Accel, ChannelSpec, ShareKind, VmSpec, SHARE_TAG};

/// Errors building the command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// The machine profile names no device for a needed function.
    #[error("machine {machine} has no {function} device in its profile")]
    NoDevice {
        machine: String,
        function: &'static str,
    },
    /// A path cannot be passed to QEMU (QEMU's option syntax has no escape for it).
    #[error("path {0:?} contains a comma, which QEMU options cannot carry")]
    Comma(String),
}

/// The QEMU arguments (without the binary) for `spec`.
pub fn qemu_args(spec: &VmSpec) -> Result<Vec<String>, ArgsError> {
    let mut args = Args::default();
    base(&mut args, spec);
    machine(&mut args, spec)?;
    console(&mut args, spec)?;
    boot(&mut args, spec)?;
    channel(&mut args, spec)?;
    share(&mut args, spec)?;
    rng(&mut args, &spec.machine);
    Ok(args.0)
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn push(&mut self, flag: &str, value: impl Into<String>) {
        self.0.push(flag.to_string());
        self.0.push(value.into());
    }

    fn flag(&mut self, flag: &str) {
        self.0.push(flag.to_string());
    }
}

fn path(p: &Path) -> Result<String, ArgsError> {
    let s = p.display().to_string();
    if s.contains(',') {
        return Err(ArgsError::Comma(s));
    }
    Ok(s)
}

fn device<'a>(
    name: &'a Option<String>,
    m: &MachineProfile,
    function: &'static str,
) -> Result<&'a str, ArgsError> {
    name.as_deref().ok_or_else(|| ArgsError::NoDevice {
        machine: m.machine.clone(),
        function,
    })
}

fn base(args: &mut Args, spec: &VmSpec) {
    args.push("-name", format!("hull-{},debug-threads=on", spec.name));
    for flag in [
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-S",
    ] {
        args.flag(flag);
    }
    args.push("-accel", spec.accel.name());
    let cpu = match spec.accel {
        Accel::Kvm => &spec.machine.cpu_kvm,
        Accel::Tcg => &spec.machine.cpu_tcg,
    };
    args.push("-cpu", cpu.as_str());
    args.push("-smp", spec.vcpus.to_string());
    args.push("-m", format!("{}M", spec.memory_mib));
}

/// The machine, with guest memory in a shared memfd so that vhost-user back
/// ends (vsock, virtio-fs) can map it.
fn machine(args: &mut Args, spec: &VmSpec) -> Result<(), ArgsError> {
    let m = &spec.machine;
    args.push(
        "-object",
        format!(
            "memory-backend-memfd,id=mem,size={}M,share=on",
            spec.memory_mib
        ),
    );
    let mut value = vec![m.machine.clone(), "memory-backend=mem".to_string()];
    value.extend(m.options.iter().cloned());
    args.push("-machine", value.join(","));
    let qmp = path(&spec.paths().qmp())?;
    args.push(
        "-chardev",
        format!("socket,id=qmp,path={qmp},server=on,wait=off"),
    );
    args.push("-mon", "chardev=qmp,mode=control");
    Ok(())
}

fn console(args: &mut Args, spec: &VmSpec) -> Result<(), ArgsError> {
    let log = path(&spec.paths().console_log())?;
    args.push("-chardev", format!("file,id=console,path={log}"));
    match spec.machine.console {
        ConsoleKind::Serial => args.push("-serial", "chardev:console"),
        ConsoleKind::Sclp => args.push("-device", "sclpconsole,chardev=console"),
    }
    Ok(())
}

fn boot(args: &mut Args, spec: &VmSpec) -> Result<(), ArgsError> {
    let b = &spec.boot;
    args.push("-kernel", path(&b.kernel)?);
    if let Some(initrd) = &b.initrd {
        args.push("-initrd", path(initrd)?);
    }
    args.push("-append", b.cmdline.clone());
    if let Some(disk) = &b.disk {
        let blk = device(
            &spec.machine.devices.virtio_blk,
            &spec.machine,
            "virtio-blk",
        )?;
        let file = path(disk)?;
        args.push(
            "-drive",
            format!("file={file},if=none,id=rootdisk,format=raw,readonly=on"),
        );
        args.push("-device", format!("{blk},drive=rootdisk"));
    }
    Ok(())
}

fn channel(args: &mut Args, spec: &VmSpec) -> Result<(), ArgsError> {
    let m = &spec.machine;
    let paths = spec.paths();
    match spec.channel {
        ChannelSpec::VhostVsock { cid } => {
            let dev = device(&m.devices.vhost_vsock, m, "vhost-vsock")?;
            args.push("-device", format!("{dev},guest-cid={cid}"));
        }
        ChannelSpec::HybridVsock { .. } => {
            let dev = device(&m.devices.vhost_user_vsock, m, "vhost-user-vsock")?;
            let sock = path(&paths.vhost_vsock())?;
            args.push("-chardev", format!("socket,id=vsock,path={sock}"));
            args.push("-device", format!("{dev},chardev=vsock"));
        }
        ChannelSpec::Serial => {
            let bus = device(&m.devices.virtio_serial, m, "virtio-serial")?;
            let sock = path(&paths.serial_agent())?;
            args.push("-device", format!("{bus},id=agentbus"));
            args.push(
                "-chardev",
                format!("socket,id=agent,path={sock},server=on,wait=off"),
            );
            args.push(
                "-device",
                format!("virtserialport,bus=agentbus.0,chardev=agent,name={SERIAL_PORT_NAME}"),
            );
        }
    }
    Ok(())
}

/// The name of the virtio-serial port carrying the agent in the serial fallback;
/// the guest sees it as `/dev/virtio-ports/<name>`.
pub const SERIAL_PORT_NAME: &str = "agent.channel.0";

fn share(args: &mut Args, spec: &VmSpec) -> Result<(), ArgsError> {
    let Some(share) = &spec.share else {
        return Ok(());
    };
    let m = &spec.machine;
    match share.kind {
        ShareKind::VirtioFs => {
            let dev = device(&m.devices.vhost_user_fs, m, "vhost-user-fs")?;
            let sock = path(&spec.paths().virtiofsd())?;
            args.push("-chardev", format!("socket,id=fs,path={sock}"));
            args.push("-device", format!("{dev},chardev=fs,tag={SHARE_TAG}"));
        }
        ShareKind::NineP => {
            let dev = device(&m.devices.virtio_9p, m, "virtio-9p")?;
            let dir = path(&share.dir)?;
            args.push(
                "-fsdev",
                format!("local,id=fs,path={dir},security_model=none,multidevs=remap"),
            );
            args.push("-device", format!("{dev},fsdev=fs,mount_tag={SHARE_TAG}"));
        }
    }
    Ok(())
}

/// Entropy from the host, so the guest's CRNG is ready at once.
fn rng(args: &mut Args, m: &MachineProfile) {
    if let Some(dev) = &m.devices.virtio_rng {
        args.push("-object", "rng-random,id=rng,filename=/dev/urandom");
        args.push("-device", format!("{dev},rng=rng"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ArchProfile;
    use crate::vm::spec::{BootSpec, ShareSpec};
    use std::path::PathBuf;

    fn spec(arch: &str, machine: Option<&str>) -> VmSpec {
        let profile = ArchProfile::load(arch).unwrap();
        VmSpec {
            name: "abc".into(),
            qemu: PathBuf::from(&profile.binary),
            machine: profile.machine(machine).unwrap().clone(),
            accel: Accel::Tcg,
            memory_mib: 256,
            vcpus: 2,
            boot: BootSpec {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd.img".into()),
                disk: None,
                cmdline: "console=ttyS0 quiet".into(),
            },
            channel: ChannelSpec::HybridVsock { cid: 3 },
            share: None,
            run_dir: "/run/hull/abc".into(),
        }
    }

    fn joined(spec: &VmSpec) -> String {
        qemu_args(spec).unwrap().join(" ")
    }

    #[test]
    fn q35_with_hybrid_vsock() {
        let line = joined(&spec("x86_64", None));
        assert!(
            line.contains("-machine q35,memory-backend=mem,vmport=off"),
            "{line}"
        );
        assert!(line.contains("memory-backend-memfd,id=mem,size=256M,share=on"));
        assert!(line.contains("-accel tcg -cpu max -smp 2 -m 256M"));
        assert!(line.contains("socket,id=vsock,path=/run/hull/abc/vhost-vsock.sock"));
        assert!(line.contains("-device vhost-user-vsock-pci,chardev=vsock"));
        assert!(line.contains("-serial chardev:console"));
        assert!(line.contains("-initrd /img/initrd.img"));
        assert!(line.contains(" -S "));
    }

    #[test]
    fn the_command_line_is_one_argument() {
        let args = qemu_args(&spec("x86_64", None)).unwrap();
        let at = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[at + 1], "console=ttyS0 quiet");
    }

    #[test]
    fn microvm_uses_mmio_devices() {
        let mut s = spec("x86_64", Some("microvm"));
        s.share = Some(ShareSpec {
            kind: ShareKind::NineP,
            dir: "/run/hull/abc/shared".into(),
        });
        let line = joined(&s);
        assert!(line.contains("-device vhost-user-vsock-device,chardev=vsock"));
        assert!(line.contains("-device virtio-9p-device,fsdev=fs,mount_tag=kataShared"));
        assert!(line.contains("-device virtio-rng-device,rng=rng"));
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let mut s = spec("aarch64", None);
        s.accel = Accel::Kvm;
        let line = joined(&s);
        assert!(line.contains("-accel kvm -cpu host"), "{line}");
        assert!(line.contains("-machine virt,memory-backend=mem,gic-version=max"));
    }

    #[test]
    fn s390x_uses_the_sclp_console_and_ccw() {
        // No vhost-user-vsock on CCW: hybrid vsock is refused, serial is used.
        assert!(qemu_args(&spec("s390x", None)).is_err());
        let mut s = spec("s390x", None);
        s.channel = ChannelSpec::Serial;
        s.boot.disk = Some("/img/rootfs.img".into());
        s.share = Some(ShareSpec {
            kind: ShareKind::VirtioFs,
            dir: "/x".into(),
        });
        let line = joined(&s);
        assert!(
            line.contains("-device sclpconsole,chardev=console"),
            "{line}"
        );
        assert!(line.contains("-device virtio-blk-ccw,drive=rootdisk"));
        assert!(line.contains("-device vhost-user-fs-ccw,chardev=fs,tag=kataShared"));
        assert!(
            line.contains("-device virtio-serial-ccw,id=agentbus"),
            "{line}"
        );
    }

    #[test]
    fn serial_fallback_adds_a_named_port() {
        let mut s = spec("ppc64le", None);
        s.channel = ChannelSpec::Serial;
        let line = joined(&s);
        assert!(
            line.contains("-device virtio-serial-pci,id=agentbus"),
            "{line}"
        );
        assert!(line.contains("virtserialport,bus=agentbus.0,chardev=agent,name=agent.channel.0"));
    }

    #[test]
    fn missing_device_is_named() {
        let mut s = spec("x86_64", None);
        s.machine.devices.vhost_vsock = None;
        s.channel = ChannelSpec::VhostVsock { cid: 4 };
        assert_eq!(
            qemu_args(&s).unwrap_err(),
            ArgsError::NoDevice {
                machine: "q35".into(),
                function: "vhost-vsock"
            }
        );
    }

    #[test]
    fn commas_in_paths_are_refused() {
        let mut s = spec("x86_64", None);
        s.boot.kernel = "/a,b/vmlinuz".into();
        assert!(matches!(qemu_args(&s), Err(ArgsError::Comma(_))));
    }
}
