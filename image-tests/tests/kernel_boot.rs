//! Kernel boot check: the built guest kernel (`$HULL_BUILD_DIR/vmlinuz`) boots
//! under QEMU to a test init that prints a marker with `/proc/uptime` and powers
//! off, which must end QEMU by itself.
//!
//! On x86_64 the init is a busybox script; on the other architectures (Debian's
//! busybox-static is x86 only) it is `hull-test-init`, built for the guest's target.
//! KVM is used when it really works on this host and the guest is the host's arch,
//! TCG otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_image_tests::env;
use hull_image_tests::qemu_tcg::{self, Accel, Boot};

const MARKER: &str = "HULL-BOOT-MARKER";

/// Generous: a TCG boot of another architecture on a busy 2-core host.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

const BUSYBOX_INIT: &str = "#!/bin/sh\n\
    /bin/busybox mount -t proc proc /proc\n\
    echo \"HULL-BOOT-MARKER uptime=$(/bin/busybox cat /proc/uptime)\"\n\
    /bin/busybox poweroff -f\n";

#[test]
fn kernel_boots_to_the_marker_and_powers_off() {
    let Some(kernel) = env::kernel() else { return };
    let Some(qemu) = env::qemu() else { return };
    let arch = env::arch();
    let dir = tempfile::tempdir().expect("temp dir");
    let initrd = dir.path().join("initrd.cpio");
    let Some(()) = make_initrd(&arch, &initrd) else {
        return;
    };

    let boot = Boot {
        arch: arch.clone(),
        qemu,
        kernel,
        initrd,
        accel: accel(&arch),
        timeout: BOOT_TIMEOUT,
    };
    let outcome = qemu_tcg::boot(&boot, MARKER).expect("start QEMU");
    let Some(line) = &outcome.marker_line else {
        panic!(
            "no {MARKER} within {BOOT_TIMEOUT:?}; console:\n{}",
            outcome.console
        );
    };
    assert!(line.contains("uptime="), "{line}");
    let exit = outcome
        .exit
        .unwrap_or_else(|| panic!("guest did not power off; console:\n{}", outcome.console));
    assert!(
        exit.success(),
        "QEMU ended with {exit}; console:\n{}",
        outcome.console
    );
    eprintln!("{arch} ({:?}): {line}", boot.accel);
}

/// The test initrd for `arch`, or `None` (with a printed reason) when a tool is missing.
fn make_initrd(arch: &str, out: &Path) -> Option<()> {
    if arch == "x86_64" && std::env::consts::ARCH == "x86_64" && Path::new("/bin/busybox").exists()
    {
        env::busybox_initrd(out, BUSYBOX_INIT, &[]).expect("busybox initrd");
        return Some(());
    }
    let init = match qemu_tcg::build_test_init(arch, &target_dir()) {
        Ok(init) => init,
        Err(e) => {
            env::skip(&format!(
                "cannot build hull-test-init for {arch}: {e} (run `make deps`)"
            ));
            return None;
        }
    };
    qemu_tcg::single_init_initrd(&init, out).expect("test init initrd");
    Some(())
}

/// Cargo's target folder of this test binary (`<target>/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// KVM when it works and the guest runs the host's architecture.
fn accel(arch: &str) -> Accel {
    let host = match std::env::consts::ARCH {
        "powerpc64" => "ppc64le",
        other => other,
    };
    match hull_runtime::kvm::probe() {
        Ok(()) if host == arch => Accel::Kvm,
        Ok(()) => Accel::Tcg,
        Err(e) => {
            eprintln!("using TCG: {e}");
            Accel::Tcg
        }
    }
}
