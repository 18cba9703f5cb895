//! `hull ps`: the sandboxes under the state directory and how they are.

use std::process::ExitCode;
use std::time::Duration;

use hull_runtime::control::Request;
use hull_runtime::sandbox::Sandbox;
use hull_runtime::state::{self, pid_alive};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Print ids only.
    #[arg(short, long)]
    quiet: bool,
}

const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(args: PsArgs) -> anyhow::Result<ExitCode> {
    let ids = state::list(&state::root())?;
    if !args.quiet {
        println!(
            "{:<16} {:<10} {:<8} {:<6} KERNEL",
            "ID", "STATUS", "QEMU", "ACCEL"
        );
    }
    for id in ids {
        if args.quiet {
            println!("{id}");
            continue;
        }
        let Ok(sandbox) = Sandbox::open(&id) else {
            continue;
        };
        let (status, qemu) = describe(&sandbox).await;
        let spec = sandbox.spec();
        println!(
            "{:<16} {:<10} {:<8} {:<6} {}",
            id,
            status,
            qemu,
            spec.accel.name(),
            spec.boot.kernel.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn describe(sandbox: &Sandbox) -> (String, String) {
    let Ok(Some(state)) = sandbox.dir().read_state() else {
        return ("starting".into(), "-".into());
    };
    let qemu = state.pids.qemu.map_or("-".into(), |p| p.to_string());
    if !pid_alive(state.supervisor) {
        return ("dead".into(), qemu);
    }
    let status = tokio::time::timeout(STATUS_TIMEOUT, sandbox.control(&Request::Status)).await;
    match status {
        Ok(Ok(reply)) => (reply.status.unwrap_or_else(|| "?".into()), qemu),
        _ => ("unknown".into(), qemu),
    }
}
