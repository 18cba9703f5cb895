//! The per-architecture boot matrix (`make test-arch ARCH=aarch64|ppc64le|s390x`,
//! also x86_64): the image in `$HULL_BUILD_DIR` (vmlinuz + initrd.img, cross-built
//! by `make image ARCH=...`) boots under the matching qemu-system, the agent
//! answers `Health.Check` and `Version` over the channel hull-runtime picks for
//! the machine, and one container runs when the agent and host can do it.
//!
//! Channels: vsock through vhost-device-vsock (hybrid `CONNECT`) with
//! `vhost-user-vsock-pci` on q35, virt and pseries; s390x has no
//! vhost-user-vsock device on CCW in QEMU, so without the kernel's vhost-vsock
//! the runtime uses its virtio-serial channel (virtio-serial-ccw) there.
//! The channel used is printed.
//!
//! The container run uses a static busybox for the guest's architecture
//! (`scripts/deps.sh --for qemu-<arch>` fetches Debian's); without one it is
//! skipped with the reason printed. Nothing here asserts on time.

#![cfg(feature = "bench")]

use std::time::Duration;

use hull_image_tests::bench::boot::{self, BootError};
use hull_image_tests::bench::containers::Sandbox;
use hull_image_tests::env;
use hull_runtime::image::Image;
use hull_runtime::plan::{plan, VmOptions};
use hull_runtime::vm::spec::Accel;
use hull_runtime::vm::Vm;

/// Generous: a TCG boot of a foreign architecture on a busy 2-core host.
const BOOT_LIMIT: Duration = Duration::from_secs(600);

/// The architecture asked for with `HULL_ARCH`, or `None` (with a reason).
fn requested_arch() -> Option<String> {
    match std::env::var("HULL_ARCH") {
        Ok(arch) => Some(arch),
        Err(_) => {
            env::skip("HULL_ARCH is not set (run `make test-arch ARCH=...`)");
            None
        }
    }
}

fn image() -> Option<Image> {
    env::kernel()?;
    env::artifact("initrd.img")?;
    env::qemu()?;
    Some(Image::open(Some(&env::build_dir())).expect("open the image directory"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_agent_answers_health_check_over_the_arch_channel() {
    let Some(arch) = requested_arch() else { return };
    let Some(image) = image() else { return };
    let run_dir = tempfile::tempdir().expect("run dir");
    let mut opts = VmOptions::new("matrix");
    opts.arch = Some(arch.clone());
    let planned = plan(&image, &opts, run_dir.path()).expect("plan the VM");
    let spec = planned.spec;
    eprintln!(
        "{arch}: machine {}, accel {}, channel {:?}",
        spec.machine.machine,
        spec.accel.name(),
        spec.channel
    );

    let mut vm = Vm::start(spec.clone()).await.expect("start the VM");
    let ready = boot::until(&mut vm, "agent ready", BOOT_LIMIT, boot::wait_ready(&spec)).await;
    let client = match ready {
        Ok(client) => client,
        Err(e) => {
            let console = std::fs::read_to_string(spec.paths().console_log()).unwrap_or_default();
            vm.stop().await;
            panic!("{arch}: {e}\nconsole:\n{console}");
        }
    };
    client
        .check(Duration::from_secs(30))
        .await
        .expect("Health.Check");
    let version = client.version().await.expect("Health.Version");
    assert!(!version.is_empty(), "{arch}: empty agent version");
    eprintln!("{arch}: agent {version} answers Health.Check");
    vm.stop().await;
    env::assert_clean(run_dir.path(), false);
}

#[tokio::test(flavor = "current_thread")]
async fn one_container_runs_in_the_arch_guest() {
    let Some(arch) = requested_arch() else { return };
    let Some(image) = image() else { return };
    let accel = if arch == hull_runtime::profile::host_arch() {
        hull_runtime::host::choose_accel(&arch).0
    } else {
        Accel::Tcg
    };
    let mut sandbox = match Sandbox::start(&image, &arch, accel, BOOT_LIMIT).await {
        Ok(s) => s,
        Err(e) => return skip_or_panic(&arch, &e),
    };
    let run = sandbox.run_true().await;
    sandbox.stop().await;
    match run {
        Ok(()) => eprintln!("{arch}: a container ran `true` and exited 0"),
        Err(e) => skip_or_panic(&arch, &e),
    }
}

/// Skips when the host has no busybox for the arch; fails for anything else.
fn skip_or_panic(arch: &str, e: &hull_image_tests::bench::containers::ContainersError) {
    use hull_image_tests::bench::containers::ContainersError;
    if let ContainersError::NoBusybox(_) = e {
        return env::skip(&format!("{arch} container run: {e}"));
    }
    if let ContainersError::Boot(BootError::Plan(_)) = e {
        panic!("{arch}: cannot plan the sandbox VM: {e:?}");
    }
    panic!("{arch}: container run failed: {e:?}");
}
