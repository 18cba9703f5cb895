//! `hull check`: what this host offers a VM, as a table, and whether a VM can
//! boot here (exit 0) or not (exit 1).

use std::process::ExitCode;

use hull_runtime::host::{self, ChannelChoice};
use hull_runtime::image;
use hull_runtime::kvm;
use hull_runtime::profile::{self, ArchProfile, MachineProfile};
use hull_runtime::vm::helpers::{VHOST_DEVICE_VSOCK, VIRTIOFSD};
use hull_runtime::vm::process::find_program;
use hull_runtime::vm::spec::{ChannelSpec, ShareKind};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Guest architecture (default: the host's).
    #[arg(long)]
    arch: Option<String>,
    /// Machine type from the QEMU profile.
    #[arg(long)]
    machine: Option<String>,
}

struct Row {
    item: &'static str,
    ok: bool,
    detail: String,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let arch = args
        .arch
        .clone()
        .unwrap_or_else(|| profile::host_arch().to_string());
    let profile = ArchProfile::load(&arch)?;
    let machine = profile.machine(args.machine.as_deref())?;
    let mut rows = Vec::new();
    let qemu = host::find_qemu(&profile.binary);
    rows.push(Row {
        item: "qemu",
        ok: qemu.is_some(),
        detail: match &qemu {
            Some(q) => format!(
                "{} {}",
                q.display(),
                host::qemu_version(q).unwrap_or_else(|| "(version unknown)".into())
            ),
            None => format!("{} not found; run `make deps`", profile.binary),
        },
    });
    rows.push(kvm_row(&arch));
    rows.push(Row {
        item: "vhost-vsock",
        ok: host::vhost_vsock_usable(),
        detail: if host::vhost_vsock_usable() {
            format!("{} usable", host::VHOST_VSOCK_DEVICE)
        } else {
            format!("{} absent or not usable", host::VHOST_VSOCK_DEVICE)
        },
    });
    rows.push(program_row("vhost-device-vsock", VHOST_DEVICE_VSOCK));
    rows.push(program_row("virtiofsd", VIRTIOFSD));
    rows.push(channel_row(machine));
    rows.push(share_row(host::choose_share(
        machine,
        host::choose_accel(&arch).0,
    )));
    rows.push(image_row());
    print_table(&arch, &machine.machine, &rows);
    let bootable = qemu.is_some() && rows.last().is_some_and(|r| r.ok);
    Ok(if bootable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn kvm_row(arch: &str) -> Row {
    if arch != profile::host_arch() {
        return Row {
            item: "kvm",
            ok: false,
            detail: format!(
                "{arch} guest on a {} host: TCG will be used",
                profile::host_arch()
            ),
        };
    }
    match kvm::probe() {
        Ok(()) => Row {
            item: "kvm",
            ok: true,
            detail: "usable (a test vCPU ran natively)".into(),
        },
        Err(e) => Row {
            item: "kvm",
            ok: false,
            detail: format!("unusable: {e}; TCG will be used (slow)"),
        },
    }
}

fn program_row(item: &'static str, name: &str) -> Row {
    match find_program(name) {
        Some(p) => Row {
            item,
            ok: true,
            detail: p.display().to_string(),
        },
        None => Row {
            item,
            ok: false,
            detail: "not installed (`make deps` installs it)".into(),
        },
    }
}

/// The channel a VM of `machine` gets, and why: as `HULL_CHANNEL` forces it,
/// else the best the host offers, else the serial fallback.
fn channel_row(machine: &MachineProfile) -> Row {
    let choice = ChannelChoice::from_env();
    let pick = choice
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|c| host::choose_channel(machine, *c).map_err(|e| e.to_string()));
    let pick = match pick {
        Ok(pick) => pick,
        Err(error) => {
            return Row {
                item: "agent channel",
                ok: false,
                detail: error,
            }
        }
    };
    let detail = match pick.spec {
        ChannelSpec::VhostVsock { .. } => "kernel vhost-vsock (AF_VSOCK to the guest CID)",
        ChannelSpec::HybridVsock { .. } => {
            "vhost-device-vsock per VM, hybrid vsock (CONNECT <port>) over a Unix socket"
        }
        ChannelSpec::Serial => "virtio-serial port, shared by the sandbox supervisor",
    };
    let why = match (choice, pick.fallback) {
        (Ok(ChannelChoice::Auto), Some(fallback)) => format!(" (fallback: {fallback})"),
        (Ok(ChannelChoice::Auto), None) => String::new(),
        (Ok(forced), _) => format!(" (forced by {}={forced})", host::CHANNEL_ENV),
        (Err(_), _) => String::new(),
    };
    Row {
        item: "agent channel",
        ok: true,
        detail: format!("will use {detail}{why}"),
    }
}

fn share_row(kind: ShareKind) -> Row {
    let detail = match kind {
        ShareKind::VirtioFs => "virtio-fs (virtiofsd per sandbox)",
        ShareKind::NineP => "virtio-9p (no virtiofsd, or TCG)",
    };
    Row {
        item: "shared files",
        ok: true,
        detail: format!("will use {detail}"),
    }
}

fn image_row() -> Row {
    match image::default_dir() {
        Ok(dir) => Row {
            item: "image",
            ok: true,
            detail: dir.display().to_string(),
        },
        Err(e) => Row {
            item: "image",
            ok: false,
            detail: e.to_string(),
        },
    }
}

fn print_table(arch: &str, machine: &str, rows: &[Row]) {
    println!("hull check: {arch} guest, machine {machine}");
    for row in rows {
        let mark = if row.ok { "ok" } else { "no" };
        println!("  {:<18} {:<3} {}", row.item, mark, row.detail);
    }
}
