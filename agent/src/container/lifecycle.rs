//! The container and process operations: create, start, exec, signal, wait, pause,
//! resume, update, stats, remove.
//!
//! Each one looks its container up, then does the blocking part through
//! [`ContainerEntry::with_jail`]. Removal kills every process, waits for them (with the
//! host's timeout), destroys the jail's container (cgroup, hooks), undoes the
//! container's storages and drops the entry.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use hull_init::reaper::ExitStatus;
use hull_jail::process::ProcessError;
use hull_jail::{Container, JailOptions, OomWatcher};
use hull_protocols::agent::{CreateContainerRequest, ExecProcessRequest};
use hull_protocols::oci_spec::runtime::LinuxResources;
use tokio::io::unix::AsyncFd;

use super::spec::{check_id, container_spec, exec_process, inherit, refuse_stdio_ports};
use super::{devices, sandbox_ns, shared_mounts};
use super::{ContainerEntry, ContainerError, JailReaper, ProcessEntry};
use crate::oom::OomNotifier;
use crate::sandbox::storage;
use crate::sandbox::undo::UndoStack;
use crate::state::Agent;

/// Creates a container; its init process waits for [`start`].
pub async fn create(agent: &Agent, req: &CreateContainerRequest) -> Result<(), ContainerError> {
    let id = req.container_id.clone();
    check_id("container_id", &id)?;
    refuse_stdio_ports([req.stdin_port, req.stdout_port, req.stderr_port])?;
    let mut spec = container_spec(&agent.config, req)?;
    let join = sandbox_ns::sandbox_join(&agent.sandbox(), req.sandbox_pidns)?;
    if let Some(join) = &join {
        sandbox_ns::join(&mut spec, join);
    }
    agent.containers.reserve(&id)?;
    let mut storages = UndoStack::default();
    let result = create_reserved(agent, req, spec, &mut storages).await;
    match result {
        Ok(entry) => {
            agent.containers.insert(Arc::new(entry));
            tracing::info!(container_id = %id, "container created");
            Ok(())
        }
        Err(e) => {
            storages.unwind(agent.kernel.as_ref());
            agent.containers.release(&id);
            Err(e)
        }
    }
}

async fn create_reserved(
    agent: &Agent,
    req: &CreateContainerRequest,
    mut spec: hull_protocols::oci_spec::runtime::Spec,
    storages: &mut UndoStack,
) -> Result<ContainerEntry, ContainerError> {
    for s in &req.storages {
        storages.append(storage::add(agent.kernel.as_ref(), &agent.config, s)?);
    }
    devices::apply_all(&agent.config, &req.devices, &mut spec).await?;
    let ctx = shared_mounts::Context {
        kernel: agent.kernel.as_ref(),
        config: &agent.config,
        containers: &agent.containers,
    };
    shared_mounts::apply(
        &ctx,
        &req.container_id,
        &req.shared_mounts,
        &mut spec,
        storages,
    )?;

    let id = req.container_id.clone();
    let bundle = bundle_dir(&spec);
    let reaper: Arc<dyn hull_jail::Reaper> = Arc::new(JailReaper(agent.reaper.clone()));
    let opts = JailOptions::default();
    let (mut container, oom) = tokio::task::spawn_blocking(move || {
        let container = Container::create(&id, &bundle, spec, &opts, reaper)?;
        let oom = container.oom_watcher();
        Ok::<_, ContainerError>((container, oom))
    })
    .await
    .map_err(|e| ContainerError::Task(e.to_string()))??;
    let pid = container.init().pid();
    let init = ProcessEntry::new(
        &req.container_id,
        pid,
        container.init().stdio(),
        agent.config.container_pipe_size,
        &agent.reaper,
    );
    // On error the container is dropped on a blocking thread: its teardown waits.
    let init = match init {
        Ok(init) => init,
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || drop(container)).await;
            return Err(e);
        }
    };
    let entry = ContainerEntry::new(container, init, std::mem::take(storages));
    match oom {
        Ok(watcher) => {
            let task = spawn_oom_watch(watcher, entry.id.clone(), agent.oom.notifier());
            *entry.oom_task.lock().unwrap_or_else(|e| e.into_inner()) = task;
        }
        Err(e) => {
            tracing::warn!(container_id = %entry.id, error = %crate::status::message_of(&e), "no oom watch")
        }
    }
    Ok(entry)
}

/// The bundle the jail reports to hooks: the directory that holds the rootfs.
fn bundle_dir(spec: &hull_protocols::oci_spec::runtime::Spec) -> std::path::PathBuf {
    spec.root()
        .as_ref()
        .and_then(|r| r.path().parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| "/".into())
}

/// Starts the init process's program.
pub async fn start(agent: &Agent, id: &str) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    entry.with_jail(|c| Ok(c.start()?)).await
}

/// Starts a process in a running container.
pub async fn exec(agent: &Agent, req: &ExecProcessRequest) -> Result<(), ContainerError> {
    let entry = agent.containers.get(&req.container_id)?;
    check_id("exec_id", &req.exec_id)?;
    refuse_stdio_ports([req.stdin_port, req.stdout_port, req.stderr_port])?;
    let process = exec_process(req)?;
    if entry.init.exit_status().is_some() {
        return Err(ContainerError::Exited(entry.id.clone()));
    }
    entry.reserve_exec(&req.exec_id)?;
    let started = exec_reserved(agent, &entry, &req.exec_id, process).await;
    match started {
        Ok(p) => {
            entry.finish_exec(&req.exec_id, Some(p));
            Ok(())
        }
        Err(e) => {
            entry.finish_exec(&req.exec_id, None);
            Err(e)
        }
    }
}

async fn exec_reserved(
    agent: &Agent,
    entry: &ContainerEntry,
    exec_id: &str,
    process: hull_protocols::oci_spec::runtime::Process,
) -> Result<ProcessEntry, ContainerError> {
    let mut jail_process = entry
        .with_jail(move |c| Ok(c.exec(&inherit(c.exec_template(), &process))?))
        .await?;
    let pid = jail_process.pid();
    let mut p = ProcessEntry::new(
        exec_id,
        pid,
        jail_process.stdio(),
        agent.config.container_pipe_size,
        &agent.reaper,
    )?;
    p.exec = Some(std::sync::Mutex::new(jail_process));
    Ok(p)
}

/// Sends `signal` to a process. SIGKILL to the init process kills every process of
/// the container; SIGTERM to an init without a handler for it acts as SIGKILL.
pub async fn signal(
    agent: &Agent,
    id: &str,
    exec_id: &str,
    signal: u32,
) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    let process = entry.process(exec_id)?;
    let sig = match i32::try_from(signal) {
        Ok(s) if (1..=64).contains(&s) => s,
        _ => {
            return Err(ContainerError::BadField {
                field: "signal".into(),
                problem: format!("{signal} is not a signal number"),
            })
        }
    };
    if entry.is_init(exec_id) && sig == libc::SIGKILL {
        return entry.with_jail(|c| Ok(c.signal_all(libc::SIGKILL)?)).await;
    }
    if process.exit_status().is_some() {
        return Err(ContainerError::Exited(process.exec_id.clone()));
    }
    let name = process.exec_id.clone();
    if entry.is_init(exec_id) {
        return entry
            .with_jail(move |c| {
                let init = c.init();
                let sig = if sig == libc::SIGTERM && !init.catches(sig).unwrap_or(true) {
                    libc::SIGKILL
                } else {
                    sig
                };
                init.signal(sig).map_err(|e| signal_error(name, e))
            })
            .await;
    }
    match &process.exec {
        Some(handle) => handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .signal(sig)
            .map_err(|e| signal_error(name, e)),
        None => Err(ContainerError::Exited(name)),
    }
}

fn signal_error(exec_id: String, e: ProcessError) -> ContainerError {
    match &e {
        ProcessError::Exited(_) => ContainerError::Exited(exec_id),
        ProcessError::Sys { source, .. } if source.raw_os_error() == Some(libc::ESRCH) => {
            ContainerError::Exited(exec_id)
        }
        _ => ContainerError::Signal(exec_id, e),
    }
}

/// Waits for a process to exit; its exit code, or 128 + the signal that killed it.
pub async fn wait(agent: &Agent, id: &str, exec_id: &str) -> Result<i32, ContainerError> {
    let process = agent.containers.get(id)?.process(exec_id)?;
    process
        .wait()
        .await
        .map(ExitStatus::code)
        .ok_or_else(|| ContainerError::Task("the reaper stopped".into()))
}

/// Freezes every process of the container.
pub async fn pause(agent: &Agent, id: &str) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    entry.with_jail(|c| Ok(c.pause()?)).await
}

/// Thaws a paused container.
pub async fn resume(agent: &Agent, id: &str) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    entry.with_jail(|c| Ok(c.resume()?)).await
}

/// Changes the container's resource limits.
pub async fn update(
    agent: &Agent,
    id: &str,
    resources: LinuxResources,
) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    entry.with_jail(move |c| Ok(c.update(&resources)?)).await
}

/// The container's cgroup statistics.
pub async fn stats(agent: &Agent, id: &str) -> Result<hull_jail::CgroupStats, ContainerError> {
    let entry = agent.containers.get(id)?;
    entry.with_jail(|c| Ok(c.stats())).await
}

/// Kills and removes a container; `timeout` seconds (0: no limit) for its processes
/// to die.
pub async fn remove(agent: &Agent, id: &str, timeout: u32) -> Result<(), ContainerError> {
    let entry = agent.containers.get(id)?;
    let stop = stop_all(&entry);
    if timeout == 0 {
        stop.await?;
    } else {
        tokio::time::timeout(Duration::from_secs(timeout.into()), stop)
            .await
            .map_err(|_| ContainerError::Timeout(id.to_string(), timeout))??;
    }
    let init_status = entry.init.exit_status();
    entry
        .take_jail(move |mut c| {
            if let Some(status) = init_status {
                c.init().record_exit(jail_status(status));
            }
            Ok(c.destroy()?)
        })
        .await?;
    if let Some(task) = entry
        .oom_task
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        task.abort();
    }
    let failures = entry
        .storages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwind(agent.kernel.as_ref());
    agent.containers.remove(id);
    tracing::info!(container_id = %id, failures, "container removed");
    Ok(())
}

async fn stop_all(entry: &ContainerEntry) -> Result<(), ContainerError> {
    entry
        .with_jail(|c| Ok(c.signal_all(libc::SIGKILL)?))
        .await?;
    for process in entry.processes() {
        process.wait().await;
    }
    Ok(())
}

/// Removes every container (the agent is stopping); failures are logged.
pub async fn remove_all(agent: &Agent) {
    for entry in agent.containers.all() {
        if let Err(e) = remove(agent, &entry.id, 10).await {
            tracing::warn!(container_id = %entry.id, error = %crate::status::message_of(&e), "cannot remove container");
        }
    }
}

fn jail_status(status: ExitStatus) -> hull_jail::ExitStatus {
    match status {
        ExitStatus::Exited(code) => hull_jail::ExitStatus::Exited(code),
        ExitStatus::Signaled(sig) => hull_jail::ExitStatus::Signaled(sig),
    }
}

/// The descriptor of an [`OomWatcher`], for the event loop.
struct OomFd(OomWatcher);

impl AsRawFd for OomFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd().as_raw_fd()
    }
}

/// Reports each OOM kill in the container to GetOOMEvent; ends when the cgroup goes.
fn spawn_oom_watch(
    watcher: OomWatcher,
    id: String,
    notifier: OomNotifier,
) -> Option<tokio::task::JoinHandle<()>> {
    // SAFETY: the watcher owns the descriptor and moves into the AsyncFd with it.
    let mut fd = match unsafe { AsyncFd::register(OomFd(watcher)) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(container_id = %id, error = %e, "cannot watch for oom kills");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.clear_ready();
            drop(guard);
            match settled_kills(fd.get_mut()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(container_id = %id, kills = n, "oom kill");
                    notifier.notify(&id);
                }
                Err(_) => return,
            }
        }
    }))
}

/// How long the kill counter may lag the notification (on cgroup v1 the event comes
/// when the cgroup runs out of memory, before the OOM killer has picked its victim).
const OOM_SETTLE: Duration = Duration::from_millis(20);
const OOM_SETTLE_TRIES: u32 = 50;

/// The new OOM kills after a notification, re-read a few times while it is 0.
async fn settled_kills(fd: &mut OomFd) -> Result<u64, hull_jail::cgroups::CgroupError> {
    for _ in 0..OOM_SETTLE_TRIES {
        let kills = fd.0.new_kills()?;
        if kills > 0 {
            return Ok(kills);
        }
        tokio::time::sleep(OOM_SETTLE).await;
    }
    Ok(0)
}
