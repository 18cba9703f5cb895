//! `hull rm [-f] ID...`: stop sandboxes and remove their state.
//!
//! Without `-f` the supervisor stops the VM (QMP `quit`) and cleans up. With
//! `-f`, or when the supervisor is gone, the recorded processes are killed and
//! the state directory removed here.

use std::process::ExitCode;

use anyhow::Context;
use hull_runtime::sandbox::Sandbox;
use hull_runtime::state::pid_alive;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill at once instead of stopping.
    #[arg(short, long)]
    force: bool,
    /// Sandbox ids.
    #[arg(required = true)]
    ids: Vec<String>,
}

pub async fn run(args: RmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for id in &args.ids {
        if let Err(e) = remove(id, args.force).await {
            eprintln!("hull: rm {id}: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn remove(id: &str, force: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::open(id)?;
    let state = sandbox.dir().read_state()?;
    let supervisor_alive = state.as_ref().is_some_and(|s| pid_alive(s.supervisor));
    if supervisor_alive && !force {
        return Ok(sandbox.stop().await?);
    }
    if let Some(state) = &state {
        let helpers = state.pids.helpers.iter().filter_map(|(_, pid)| *pid);
        let pids = [Some(state.supervisor), state.pids.qemu]
            .into_iter()
            .flatten()
            .chain(helpers);
        for pid in pids {
            kill_pid(pid);
        }
    }
    sandbox
        .dir()
        .remove()
        .with_context(|| format!("removing sandbox {id}"))
}

fn kill_pid(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        if pid_alive(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
}
