//! `hull ps`: the sandboxes under the state directory, how they are, and the
//! containers recorded in each (running or exited; the agent knows which).

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
            "{:<16} {:<10} {:<8} {:<6} {:<24} KERNEL",
            "ID", "STATUS", "QEMU", "ACCEL", "CONTAINERS"
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
        let containers = containers_column(&sandbox.dir().containers().unwrap_or_default());
        println!(
            "{:<16} {:<10} {:<8} {:<6} {:<24} {}",
            id,
            status,
            qemu,
            spec.accel.name(),
            containers,
            spec.boot.kernel.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Container ids separated by commas, or `-`.
fn containers_column(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".to_string()
    } else {
        ids.join(",")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_listed_or_dashed() {
        assert_eq!(containers_column(&[]), "-");
        let ids = ["a".to_string(), "web".to_string()];
        assert_eq!(containers_column(&ids), "a,web");
    }
}
