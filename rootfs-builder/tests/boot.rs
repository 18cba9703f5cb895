//! Boots the initrd and the disk images under QEMU (TCG is fine) with the command
//! lines from the manifest, and checks that PID 1 from the image runs.
//!
//! PID 1 is a static busybox acting as `init` with an inittab that prints a marker and
//! powers off, so these tests do not depend on the agent. The kernel comes from
//! `HULL_TEST_KERNEL` or `$HULL_BUILD_DIR/vmlinuz`, its config from
//! `HULL_TEST_KERNEL_CONFIG` or `kernel.config` next to it; each test skips (saying
//! why) when there is no kernel, no QEMU, or the config lacks what the boot needs.
//! x86_64 hosts only (q35 machine).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MARKER: &str = "HULL-BOOT-OK";
const QEMU: &str = "qemu-system-x86_64";
/// Generous: TCG boots take a few seconds; this only bounds a hung guest.
const QEMU_TIMEOUT_S: &str = "240";

struct Kernel {
    image: PathBuf,
}

fn kernel(needs: &[&str]) -> Option<Kernel> {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: boot tests run on x86_64 hosts");
        return None;
    }
    let image = std::env::var_os("HULL_TEST_KERNEL")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HULL_BUILD_DIR").map(|d| Path::new(&d).join("vmlinuz")));
    let Some(image) = image.filter(|p| p.is_file()) else {
        eprintln!("skipped: no kernel (set HULL_TEST_KERNEL or HULL_BUILD_DIR with a vmlinuz)");
        return None;
    };
    let config_path = std::env::var_os("HULL_TEST_KERNEL_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| image.with_file_name("kernel.config"));
    let Ok(config) = fs::read_to_string(&config_path) else {
        eprintln!("skipped: no kernel config at {}", config_path.display());
        return None;
    };
    if let Some(missing) = needs
        .iter()
        .find(|o| !config.contains(&format!("\nCONFIG_{o}=y")))
    {
        eprintln!(
            "skipped: kernel {} lacks CONFIG_{missing}=y",
            image.display()
        );
        return None;
    }
    common::have_tool(QEMU).then_some(Kernel { image })
}

/// A build directory whose rootfs runs busybox init with a marker-and-poweroff inittab.
fn build_dir(dir: &Path, busybox: &Path) -> PathBuf {
    fs::write(
        dir.join("inittab"),
        format!("::sysinit:/bin/busybox echo {MARKER}\n::sysinit:/bin/busybox poweroff -f\n"),
    )
    .unwrap();
    fs::write(dir.join("extra.list"), "inittab /etc/inittab 0644\n").unwrap();
    let build = dir.join("build");
    fs::create_dir(&build).unwrap();
    let rootfs = build.join("rootfs");
    common::ok(&[
        &"rootfs",
        &"--arch",
        &"x86_64",
        &"--agent",
        &busybox,
        &"--out",
        &rootfs,
        &"--with-busybox",
        &busybox,
        &"--extra-files",
        &dir.join("extra.list"),
    ]);
    build
}

fn manifest_cmdline(build: &Path, which: &str) -> String {
    common::ok(&[&"manifest", &"--dir", &build, &"--arch", &"x86_64"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(build.join("manifest.json")).unwrap()).unwrap();
    manifest["cmdline"][which]
        .as_str()
        .expect("cmdline present")
        .to_owned()
}

/// Boots and returns the serial console output.
fn boot(kernel: &Kernel, cmdline: &str, extra: &[&str]) -> String {
    let out = Command::new("timeout")
        .args([
            QEMU_TIMEOUT_S,
            QEMU,
            "-M",
            "q35",
            "-m",
            "256",
            "-nographic",
            "-nodefaults",
        ])
        .args(["-serial", "stdio", "-no-reboot", "-kernel"])
        .arg(&kernel.image)
        .args(["-append", cmdline])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("qemu runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_booted(console: &str, what: &str) {
    assert!(
        console.contains(MARKER),
        "{what} did not reach init; console:\n{console}"
    );
}

#[test]
fn initrd_boots_to_init() {
    let Some(kernel) = kernel(&["BLK_DEV_INITRD", "RD_ZSTD"]) else {
        return;
    };
    let Some(busybox) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let build = build_dir(dir.path(), &busybox);
    let initrd = build.join("initrd.img");
    common::ok(&[
        &"initrd",
        &"--rootfs",
        &build.join("rootfs"),
        &"--out",
        &initrd,
    ]);
    let cmdline = manifest_cmdline(&build, "initrd");
    let console = boot(&kernel, &cmdline, &["-initrd", initrd.to_str().unwrap()]);
    assert_booted(&console, "initrd");
}

fn boot_disk(kernel: &Kernel, flags: &[&str]) {
    let Some(busybox) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let build = build_dir(dir.path(), &busybox);
    let (rootfs, image) = (build.join("rootfs"), build.join("rootfs.img"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"disk", &"--rootfs", &rootfs, &"--out", &image];
    args.extend(flags.iter().map(|f| f as &dyn AsRef<std::ffi::OsStr>));
    common::ok(&args);
    let cmdline = manifest_cmdline(&build, "disk");
    let drive = format!("file={},format=raw,if=virtio,readonly=on", image.display());
    let console = boot(kernel, &cmdline, &["-drive", &drive]);
    assert_booted(&console, &format!("disk {flags:?} ({cmdline})"));
}

#[test]
fn ext4_disk_boots_to_init() {
    let needs = ["VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS", "EFI_PARTITION"];
    let Some(kernel) = kernel(&needs) else { return };
    boot_disk(&kernel, &[]);
}

#[test]
fn erofs_disk_boots_to_init() {
    let needs = ["VIRTIO_PCI", "VIRTIO_BLK", "EROFS_FS", "EFI_PARTITION"];
    let Some(kernel) = kernel(&needs) else { return };
    boot_disk(&kernel, &["--fs", "erofs"]);
}

#[test]
fn verity_disk_boots_to_init() {
    let needs = [
        "VIRTIO_PCI",
        "VIRTIO_BLK",
        "EXT4_FS",
        "EFI_PARTITION",
        "DM_VERITY",
        "DM_INIT",
    ];
    let Some(kernel) = kernel(&needs) else { return };
    boot_disk(&kernel, &["--verity"]);
}
