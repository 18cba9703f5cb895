//! The agent as PID 1 of a real guest: it answers over the host-guest channel,
//! reports its guest details, and DestroySandbox powers the VM off cleanly.
//! Skipped (with the reason printed) without a built image, QEMU or root.

use std::time::Duration;

use hull_image_tests::bench::boot::{until, wait_ready};
use hull_image_tests::env;
use hull_protocols::agent::{DestroySandboxRequest, GuestDetailsRequest};
use hull_runtime::agent::ctx;
use hull_runtime::image::{Image, RootKind};
use hull_runtime::plan::{plan, VmOptions};
use hull_runtime::vm::{ExitCause, Vm};

/// Generous: TCG on a loaded two-core machine.
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn destroy_sandbox_powers_the_guest_off() {
    if env::root().is_none() || env::qemu().is_none() || env::kernel().is_none() {
        return;
    }
    let Some(_) = env::artifact("initrd.img") else {
        return;
    };
    let image = Image::open(Some(&env::build_dir())).unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let mut opts = VmOptions::new("agent-vm-test");
    opts.root = RootKind::Initrd;
    let spec = plan(&image, &opts, run_dir.path()).unwrap().spec;
    let mut vm = Vm::start(spec.clone()).await.unwrap();

    let client = until(&mut vm, "agent ready", LIMIT, wait_ready(&spec))
        .await
        .unwrap();
    let details = client
        .service()
        .get_guest_details(ctx(Some(LIMIT)), &GuestDetailsRequest::new())
        .await
        .unwrap();
    assert!(details.agent_details.init_daemon, "the agent is not PID 1");

    // The VM may end before the reply arrives; what counts is how it ends.
    let _ = client
        .service()
        .destroy_sandbox(ctx(Some(LIMIT)), &DestroySandboxRequest::new())
        .await;
    let exit = tokio::time::timeout(LIMIT, vm.wait())
        .await
        .expect("the guest did not power off after DestroySandbox");
    assert_eq!(exit.cause, ExitCause::PoweredOff, "{exit}");
    env::assert_clean(run_dir.path(), false);
}
