//! The VM launcher against a real kernel under QEMU, with small busybox initrds:
//! how a guest's end is reported (power-off, kernel panic, host stop), the QMP
//! status, and the hybrid vsock channel to a guest echo server. Every test
//! checks that no process of its VM is left.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_image_tests::env;
use hull_runtime::channel;
use hull_runtime::image::Image;
use hull_runtime::plan::{plan, VmOptions};
use hull_runtime::vm::spec::{Accel, ChannelSpec};
use hull_runtime::vm::{ExitCause, Vm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        env::busybox_initrd(&image.join("initrd.img"), init, extra).ok()?;
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

#[tokio::test]
async fn hybrid_vsock_reaches_a_guest_listener() {
    let echo = Path::new(env!("CARGO_BIN_EXE_vsock-echo"));
    let libs = env::shared_libraries(echo).unwrap();
    let mut extra: Vec<(&str, &Path)> = vec![("/vsock-echo", echo)];
    extra.extend(
        libs.iter()
            .map(|(name, host)| (name.as_str(), host.as_path())),
    );
    let init = "#!/bin/sh\n/vsock-echo 1024 &\nwhile :; do /bin/busybox sleep 1; done\n";
    let Some(t) = TestVm::new(init, &extra) else {
        return;
    };
    let mut vm = t.start().await;
    let ChannelSpec::HybridVsock { .. } = vm.spec().channel else {
        env::skip("vhost-device-vsock is not installed");
        vm.stop().await;
        return;
    };
    let paths = vm.spec().paths();
    let mut stream = tokio::time::timeout(BOOT_LIMIT, async {
        loop {
            match channel::connect_hybrid(&paths.hybrid_vsock(), 1024).await {
                Ok(s) => return s,
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no vsock listener: {}", vm.spec().run_dir.display()));
    stream.write_all(b"hello over vsock\n").await.unwrap();
    let mut buf = [0u8; 17];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello over vsock\n");
    assert_eq!(vm.stop().await.cause, ExitCause::Stopped);
    env::assert_clean(&t.run_dir(), false);
}
