//! The VM launcher against a real kernel under QEMU, with small busybox initrds:
//! how a guest's end is reported (power-off, kernel panic, host stop), the QMP
//! status. Every test checks that no process of its VM is left. The hybrid vsock
//! channel is exercised end to end by the runtime CLI tests, which reach the real
//! agent through it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_image_tests::env;
use hull_runtime::image::Image;
use hull_runtime::plan::{plan, VmOptions};
use hull_runtime::vm::spec::Accel;
use hull_runtime::vm::{ExitCause, Vm};

/// A test VM's files: an image directory (the kernel under test and a busybox
/// initrd) and a run directory.
struct TestVm {
    dir: tempfile::TempDir,
}

impl TestVm {
    fn new(init: &str, extra: &[(&str, &Path)]) -> Option<Self> {
        let kernel = env::kernel()?;
        env::qemu()?;
        let dir = tempfile::tempdir().ok()?;
        let image = dir.path().join("image");
        std::fs::create_dir_all(image.join("run")).ok()?;
        std::os::unix::fs::symlink(&kernel, image.join("vmlinuz")).ok()?;
        if let Err(e) = env::busybox_initrd(&image.join("initrd.img"), init, extra) {
            env::skip(&format!("busybox initrd: {e}"));
            return None;
        }
        Some(Self { dir })
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("image/run")
    }

    async fn start(&self) -> Vm {
        let image = Image::open(Some(&self.dir.path().join("image"))).unwrap();
        let mut opts = VmOptions::new("launcher-test");
        opts.memory_mib = 256;
        opts.accel = Some(Accel::Tcg);
        opts.arch = Some(env::arch());
        let plan = plan(&image, &opts, &self.run_dir()).unwrap();
        Vm::start(plan.spec).await.unwrap()
    }
}

const BOOT_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn power_off_is_reported_with_the_console() {
    let init = "#!/bin/sh\necho hull-test-up\n/bin/busybox poweroff -f\n";
    let Some(t) = TestVm::new(init, &[]) else {
        return;
    };
    let mut vm = t.start().await;
    let exit = tokio::time::timeout(BOOT_LIMIT, vm.wait()).await.unwrap();
    assert_eq!(exit.cause, ExitCause::PoweredOff, "{exit}");
    assert!(exit.console_tail.contains("hull-test-up"), "{exit}");
    env::assert_clean(&t.run_dir(), false);
}

#[tokio::test]
async fn an_init_that_exits_is_a_named_panic() {
    let init = "#!/bin/sh\necho leaving\n";
    let Some(t) = TestVm::new(init, &[]) else {
        return;
    };
    let mut vm = t.start().await;
    let exit = tokio::time::timeout(BOOT_LIMIT, vm.wait()).await.unwrap();
    match &exit.cause {
        ExitCause::Panicked(msg) => assert!(msg.contains("Attempted to kill init"), "{exit}"),
        other => panic!("expected a panic, got {other:?}: {exit}"),
    }
    assert!(exit.to_string().contains("console (last lines)"));
    env::assert_clean(&t.run_dir(), false);
}

#[tokio::test]
async fn a_running_guest_reports_status_and_stops_on_request() {
    let init = "#!/bin/sh\nwhile :; do /bin/busybox sleep 1; done\n";
    let Some(t) = TestVm::new(init, &[]) else {
        return;
    };
    let mut vm = t.start().await;
    assert_eq!(vm.qmp().status().await.unwrap(), "running");
    let pids = vm.pids();
    assert!(pids.qemu.is_some());
    let exit = vm.stop().await;
    assert_eq!(exit.cause, ExitCause::Stopped);
    env::assert_clean(&t.run_dir(), false);
}
