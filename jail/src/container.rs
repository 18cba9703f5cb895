//! A container's life: create (namespaces, mounts, cgroup, hooks; the init process
//! waits), start, exec, pause/resume, update, stats, signals, destroy.
//!
//! Every call blocks until the child answers; an async caller runs them on a
//! blocking thread. Nothing is left behind on failure: the child processes are
//! killed and reaped, and the cgroup is removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process as ProcessSpec, Spec};

use crate::cgroups::oom::OomWatcher;
use crate::cgroups::Cgroup;
use crate::config::{ExecConfig, InitConfig};
use crate::process::Process;
use crate::protocol::{FromChild, ToChild};
use crate::reaper::Reaper;
use crate::seccomp::Program;
use crate::spawn::{make_stdio, write_id_maps, Child, JailOptions};
use crate::{hooks, spec, JailError};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up; the init process waits for [`Container::start`].
    Created,
    /// The init process runs its program.
    Running,
    /// Frozen by [`Container::pause`].
    Paused,
}

/// A container created by the jail.
pub struct Container {
    id: String,
    bundle: PathBuf,
    spec: Spec,
    opts: JailOptions,
    reaper: Arc<dyn Reaper>,
    cgroup: Cgroup,
    seccomp: Option<Program>,
    init: Process,
    /// The init process's socket, until it execs.
    child: Option<Child>,
    status: Status,
    /// Set once [`Container::destroy`] has run.
    destroyed: bool,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("init", &self.init)
            .finish()
    }
}

impl Container {
    /// Creates the container described by `spec` (with its rootfs relative to
    /// `bundle`). Returns once the init process is ready and waiting for `start`.
    pub fn create(
        id: &str,
        bundle: &Path,
        spec: Spec,
        opts: &JailOptions,
        reaper: Arc<dyn Reaper>,
    ) -> Result<Container, JailError> {
        let rootfs = spec::validate(&spec, bundle)?;
        require_new_mount_ns(&spec)?;
        let seccomp = compile_seccomp(&spec)?;
        let mut cgroup = Cgroup::new(&cgroup_path(id, &spec, opts)?).map_err(cg(id))?;
        let mut child = Child::spawn(id, opts)?;
        let result = setup(
            id,
            bundle,
            &spec,
            rootfs,
            &seccomp,
            &mut cgroup,
            &mut child,
            &*reaper,
        );
        let init = match result {
            Ok(init) => init,
            Err(e) => {
                child.abandon(&*reaper);
                let _ = cgroup.destroy();
                return Err(e);
            }
        };
        let pidfd = child
            .pidfd
            .take()
            .ok_or_else(|| unexpected_opt(id, "fork", None))?;
        let init = Process::new(init.0, pidfd, init.1, reaper.clone()).map_err(|source| {
            JailError::Wait {
                id: id.to_string(),
                pid: init.0,
                source,
            }
        })?;
        Ok(Container {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            spec,
            opts: opts.clone(),
            reaper,
            cgroup,
            seccomp,
            init,
            child: Some(child),
            status: Status::Created,
            destroyed: false,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the container is in its life.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The init process.
    pub fn init(&mut self) -> &mut Process {
        &mut self.init
    }

    /// The spec the container was created from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// A process spec for [`Container::exec`] that inherits the init process's
    /// settings (capabilities, rlimits, no_new_privileges, oom_score_adj ...); the
    /// caller sets args, env, cwd, user and terminal.
    pub fn exec_template(&self) -> ProcessSpec {
        let mut p = self.spec.process().clone().unwrap_or_default();
        p.set_terminal(Some(false));
        p.set_console_size(None);
        p
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Runs the startContainer hooks and the init program, then the poststart
    /// hooks (a failing poststart hook is only logged, as the spec says).
    pub fn start(&mut self) -> Result<(), JailError> {
        self.expect(Status::Created)?;
        let mut child = self
            .child
            .take()
            .ok_or_else(|| self.state_error(Status::Created))?;
        child.send(&ToChild::Start, &[])?;
        match child.recv() {
            Ok(None) => {}
            Ok(Some(other)) => return Err(unexpected(&self.id, "exec", other)),
            Err(e) => return Err(e),
        }
        self.status = Status::Running;
        self.run_runtime_hooks("poststart", |h| h.poststart(), "running", true)
    }

    /// Starts `process` in the running container, in its namespaces and cgroup.
    pub fn exec(&mut self, process: &ProcessSpec) -> Result<Process, JailError> {
        self.expect(Status::Running)?;
        spec::validate_process(process, "process")?;
        let mut child = Child::spawn(&self.id, &self.opts)?;
        match self.exec_in(&mut child, process) {
            Ok((pid, stdio)) => {
                let pidfd = child
                    .pidfd
                    .take()
                    .ok_or_else(|| unexpected_opt(&self.id, "fork", None))?;
                Process::new(pid, pidfd, stdio, self.reaper.clone()).map_err(|source| {
                    JailError::Wait {
                        id: self.id.clone(),
                        pid,
                        source,
                    }
                })
            }
            Err(e) => {
                child.abandon(&*self.reaper);
                Err(e)
            }
        }
    }

    fn exec_in(
        &mut self,
        child: &mut Child,
        process: &ProcessSpec,
    ) -> Result<(i32, crate::process::ProcessStdio), JailError> {
        self.cgroup
            .add_process(child.first_pid())
            .map_err(cg(&self.id))?;
        let terminal = process.terminal().unwrap_or(false);
        let (mut parent_stdio, child_fds) = make_stdio(&self.id, terminal)?;
        let cfg = ExecConfig {
            id: self.id.clone(),
            init_pid: self.init.pid(),
            namespaces: own_namespaces(&self.spec),
            process: process.clone(),
            seccomp: self.seccomp.clone(),
            terminal,
        };
        let raw: Vec<i32> = child_fds
            .iter()
            .map(std::os::fd::AsRawFd::as_raw_fd)
            .collect();
        child.send(&ToChild::Exec(Box::new(cfg)), &raw)?;
        drop(child_fds);
        let pid = match child.recv()? {
            Some(FromChild::Pid(pid)) => pid,
            other => return Err(unexpected_opt(&self.id, "fork", other)),
        };
        child.got_pid(pid, &*self.reaper)?;
        child.send(&ToChild::PidAck, &[])?;
        match child.recv()? {
            None => {
                take_terminal(&self.id, terminal, child, &mut parent_stdio)?;
                Ok((pid, parent_stdio))
            }
            Some(other) => Err(unexpected(&self.id, "exec", other)),
        }
    }

    /// Freezes every process of the container.
    pub fn pause(&mut self) -> Result<(), JailError> {
        self.expect(Status::Running)?;
        self.cgroup.freeze().map_err(cg(&self.id))?;
        self.status = Status::Paused;
        Ok(())
    }

    /// Thaws a paused container.
    pub fn resume(&mut self) -> Result<(), JailError> {
        self.expect(Status::Paused)?;
        self.cgroup.thaw().map_err(cg(&self.id))?;
        self.status = Status::Running;
        Ok(())
    }

    /// Changes the container's resource limits.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<(), JailError> {
        self.cgroup.set(resources).map_err(cg(&self.id))
    }

    /// Resource usage.
    pub fn stats(&self) -> cgroups_rs::CgroupStats {
        self.cgroup.stats()
    }

    /// A watcher for OOM kills in the container.
    pub fn oom_watcher(&self) -> Result<OomWatcher, JailError> {
        OomWatcher::new(&self.cgroup.memory_dir(), self.cgroup.v2()).map_err(cg(&self.id))
    }

    /// Sends `signal` to every process in the container.
    pub fn signal_all(&self, signal: i32) -> Result<(), JailError> {
        self.cgroup.signal_all(signal).map_err(cg(&self.id))
    }

    /// Kills whatever still runs, reaps the init process, removes the cgroup, then
    /// runs the poststop hooks (their failures are logged).
    pub fn destroy(mut self) -> Result<(), JailError> {
        self.remove()
    }

    /// [`Container::destroy`] for a container the caller cannot give up (one
    /// behind a lock); afterwards the handle only answers errors and its drop
    /// does nothing more.
    pub fn remove(&mut self) -> Result<(), JailError> {
        if self.destroyed {
            return Ok(());
        }
        self.destroyed = true;
        self.teardown()?;
        self.run_runtime_hooks("poststop", |h| h.poststop(), "stopped", true)
    }

    fn teardown(&mut self) -> Result<(), JailError> {
        self.cgroup.destroy().map_err(cg(&self.id))?;
        if let Some(mut child) = self.child.take() {
            if self.init.status().is_some() {
                // The caller already reaped the init process: nothing to kill or wait.
                child.process = None;
            }
            child.abandon(&*self.reaper);
        }
        if self.init.status().is_none() {
            let _ = self.init.signal(libc::SIGKILL);
            self.init.wait().map_err(|e| JailError::Wait {
                id: self.id.clone(),
                pid: self.init.pid(),
                source: std::io::Error::other(crate::child::error_chain(&e)),
            })?;
        }
        Ok(())
    }

    fn run_runtime_hooks(
        &self,
        kind: &'static str,
        pick: impl Fn(&oci_spec::runtime::Hooks) -> &Option<Vec<oci_spec::runtime::Hook>>,
        status: &str,
        warn_only: bool,
    ) -> Result<(), JailError> {
        let Some(list) = self.spec.hooks().as_ref().and_then(|h| pick(h).as_deref()) else {
            return Ok(());
        };
        let state = hooks::state_json(&self.spec, &self.id, status, self.init.pid(), &self.bundle);
        match hooks::run_all(kind, list, &state, &*self.reaper) {
            Err(e) if warn_only => {
                tracing::warn!(container_id = %self.id, error = %crate::child::error_chain(&e), "hook failed");
                Ok(())
            }
            other => other.map_err(|source| JailError::Hook {
                id: self.id.clone(),
                source,
            }),
        }
    }

    fn expect(&self, want: Status) -> Result<(), JailError> {
        if self.status == want {
            Ok(())
        } else {
            Err(self.state_error(want))
        }
    }

    fn state_error(&self, want: Status) -> JailError {
        JailError::State {
            id: self.id.clone(),
            status: self.status,
            expected: want,
        }
    }
}

impl Drop for Container {
    /// A container dropped without [`Container::destroy`] (a caller's early
    /// return, a panic) is still torn down: nothing stays behind.
    fn drop(&mut self) {
        if self.destroyed {
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::warn!(container_id = %self.id, error = %crate::child::error_chain(&e), "teardown failed");
        }
    }
}

/// Spawns nothing: drives an already spawned child through container setup and
/// returns the init pid and its stdio.
#[allow(clippy::too_many_arguments)]
fn setup(
    id: &str,
    bundle: &Path,
    spec: &Spec,
    rootfs: PathBuf,
    seccomp: &Option<Program>,
    cgroup: &mut Cgroup,
    child: &mut Child,
    reaper: &dyn Reaper,
) -> Result<(i32, crate::process::ProcessStdio), JailError> {
    cgroup.add_process(child.first_pid()).map_err(cg(id))?;
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroup.set(res).map_err(cg(id))?;
    }
    let process = spec.process().clone().unwrap_or_default();
    let terminal = process.terminal().unwrap_or(false);
    let (mut parent_stdio, child_fds) = make_stdio(id, terminal)?;
    let cfg = InitConfig {
        id: id.to_string(),
        bundle: bundle.to_path_buf(),
        rootfs,
        spec: spec.clone(),
        terminal,
        cgroup_dirs: cgroup.dirs(),
        seccomp: seccomp.clone(),
    };
    let raw: Vec<i32> = child_fds
        .iter()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .collect();
    child.send(&ToChild::Init(Box::new(cfg)), &raw)?;
    drop(child_fds);
    converse(id, bundle, spec, child, reaper)?;
    take_terminal(id, terminal, child, &mut parent_stdio)?;
    Ok((child.process.unwrap_or_default(), parent_stdio))
}

/// Answers the child until it reports ready.
fn converse(
    id: &str,
    bundle: &Path,
    spec: &Spec,
    child: &mut Child,
    reaper: &dyn Reaper,
) -> Result<(), JailError> {
    loop {
        match child.recv()? {
            Some(FromChild::UserNsReady) => {
                write_id_maps(id, child.first_pid(), spec.linux().as_ref())?;
                child.send(&ToChild::UserMapsWritten, &[])?;
            }
            Some(FromChild::Pid(pid)) => {
                child.got_pid(pid, reaper)?;
                child.send(&ToChild::PidAck, &[])?;
            }
            Some(FromChild::CreateRuntimeHooks) => {
                let pid = child.process.unwrap_or_default();
                let state = hooks::state_json(spec, id, "creating", pid, bundle);
                let all = spec.hooks().clone().unwrap_or_default();
                for (kind, list) in [
                    ("prestart", all.prestart()),
                    ("createRuntime", all.create_runtime()),
                ] {
                    hooks::run_all(kind, list.as_deref().unwrap_or_default(), &state, reaper)
                        .map_err(|source| JailError::Hook {
                            id: id.to_string(),
                            source,
                        })?;
                }
                child.send(&ToChild::HooksDone, &[])?;
            }
            Some(FromChild::Ready) => return Ok(()),
            other => return Err(unexpected_opt(id, "setup", other)),
        }
    }
}

fn unexpected(id: &str, step: &str, msg: FromChild) -> JailError {
    unexpected_opt(id, step, Some(msg))
}

fn unexpected_opt(id: &str, step: &str, msg: Option<FromChild>) -> JailError {
    let message = match msg {
        Some(m) => format!("unexpected message {}", m.name()),
        None => "jail child exited without a report".to_string(),
    };
    JailError::Child {
        id: id.to_string(),
        step: step.to_string(),
        message,
    }
}

fn cg(id: &str) -> impl Fn(crate::cgroups::CgroupError) -> JailError + '_ {
    move |source| JailError::Cgroup {
        id: id.to_string(),
        source,
    }
}

/// Moves the terminal the child sent into the parent's stdio.
fn take_terminal(
    id: &str,
    terminal: bool,
    child: &mut Child,
    stdio: &mut crate::process::ProcessStdio,
) -> Result<(), JailError> {
    if !terminal {
        return Ok(());
    }
    let master = child.terminal.take().ok_or_else(|| JailError::Child {
        id: id.to_string(),
        step: "terminal".into(),
        message: "the child sent no terminal".into(),
    })?;
    stdio.terminal = Some(std::fs::File::from(master));
    Ok(())
}

/// The namespaces the container created for itself (joined by exec).
fn own_namespaces(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ())
        .collect()
}

fn require_new_mount_ns(spec: &Spec) -> Result<(), JailError> {
    let new_mnt = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount && n.path().is_none());
    if new_mnt {
        Ok(())
    } else {
        Err(spec::invalid("linux.namespaces", "a new mount namespace is required").into())
    }
}

fn compile_seccomp(spec: &Spec) -> Result<Option<Program>, JailError> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Ok(Some(crate::seccomp::compile(profile)?)),
        None => Ok(None),
    }
}

/// `linux.cgroupsPath` (absolute: as is; relative: under the jail's parent), or
/// the parent and the container id.
fn cgroup_path(id: &str, spec: &Spec, opts: &JailOptions) -> Result<String, JailError> {
    let given = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let path = match given {
        Some(p) if p.to_string_lossy().contains(':') => {
            return Err(spec::invalid(
                "linux.cgroupsPath",
                "systemd cgroup paths are not supported",
            )
            .into())
        }
        Some(p) if p.is_absolute() => p,
        Some(p) => Path::new(&opts.cgroup_parent).join(p),
        None => Path::new(&opts.cgroup_parent).join(id),
    };
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(spec::invalid("linux.cgroupsPath", "must not contain ..").into());
    }
    Ok(path.to_string_lossy().trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn containers_and_processes_can_move_to_a_blocking_thread() {
        assert_send::<Container>();
        assert_send::<Process>();
    }
}
