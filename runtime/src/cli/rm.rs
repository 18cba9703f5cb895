//! `hull rm [-f] ID...`: stop sandboxes and remove their state, or remove
//! containers from the sandboxes holding them. Prints each id with what
//! happened.
//!
//! A sandbox's supervisor stops the VM (DestroySandbox to the agent, so the
//! guest powers off; QMP `quit` and SIGKILL if it does not) and cleans up. With
//! `-f`, or when the supervisor is gone, the recorded processes are killed and
//! the state directory removed here. An id that names a container of another
//! sandbox removes just that container (RemoveContainer in the guest, its
//! share and record), `-f` or not.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hull_runtime::sandbox::Sandbox;
use hull_runtime::state::{self, pid_alive, StateError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long `-f` waits for the processes it killed to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill sandboxes at once instead of stopping them.
    #[arg(short, long)]
    force: bool,
    /// Sandbox or container ids.
    #[arg(required = true)]
    ids: Vec<String>,
}

pub async fn run(args: RmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for id in &args.ids {
        match remove(id, args.force).await {
            Ok(what) => println!("{id}: {what}"),
            Err(e) => {
                eprintln!("hull: rm {id}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Removes sandbox or container `id`; says what happened.
async fn remove(id: &str, force: bool) -> anyhow::Result<String> {
    let holder = match state::find_container(&state::root(), id) {
        Ok(dir) => dir.id().to_string(),
        Err(StateError::NoContainer(_)) => bail!("no sandbox or container {id} (see `hull ps`)"),
        Err(e) => return Err(e.into()),
    };
    if holder != id {
        let sandbox = Sandbox::open_running(&holder)?;
        sandbox.remove_container(id).await?;
        return Ok(format!("container removed from sandbox {holder}"));
    }
    remove_sandbox(id, force).await
}

async fn remove_sandbox(id: &str, force: bool) -> anyhow::Result<String> {
    let sandbox = Sandbox::open(id)?;
    let state = sandbox.dir().read_state()?;
    let supervisor_alive = state.as_ref().is_some_and(|s| pid_alive(s.supervisor));
    if supervisor_alive && !force {
        let exit = sandbox.stop().await?;
        let how = exit.as_deref().and_then(|e| e.lines().next());
        return Ok(how.unwrap_or("stopped").to_string());
    }
    if let Some(state) = &state {
        let helpers = state.pids.helpers.iter().filter_map(|(_, pid)| *pid);
        let pids = [Some(state.supervisor), state.pids.qemu]
            .into_iter()
            .flatten()
            .chain(helpers);
        let pids: Vec<u32> = pids.collect();
        for &pid in &pids {
            kill_pid(pid);
        }
        wait_dead(&pids, KILL_WAIT).await;
    }
    sandbox
        .dir()
        .remove()
        .with_context(|| format!("removing sandbox {id}"))?;
    Ok("killed".to_string())
}

/// Waits until each of `pids` has exited (or is a zombie, its parent's to
/// reap), at most `limit`: SIGKILL is delivered, not waited for.
async fn wait_dead(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&pid| running(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid` exists and has not exited yet.
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    pid_alive(pid) && !matches!(state, Some("Z" | "X"))
}

fn kill_pid(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        if pid_alive(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
}
