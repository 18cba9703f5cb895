//! The sandbox: what CreateSandbox set up in the guest, and how to take it down.
//!
//! The sandbox owns an [`UndoStack`] of every change it made (hostname, files,
//! mounts); DestroySandbox, or a CreateSandbox that fails half-way, unwinds it in
//! reverse. Containers (added by the container API) keep their own undo stacks and
//! are torn down before the sandbox's. It also holds the pid, ipc and uts namespaces
//! its containers share ([`namespaces`]), released first on DestroySandbox.

pub mod etc_files;
pub mod modules;
pub mod namespaces;
pub mod storage;
pub mod undo;

use std::path::PathBuf;

use hull_init::kernel::Kernel;
use hull_init::reaper::Reaper;
use hull_protocols::agent::CreateSandboxRequest;
use thiserror::Error;

use crate::config::Config;
use namespaces::{NamespacesError, SharedNamespaces};
use storage::StorageError;
use undo::UndoStack;

/// Errors of the sandbox life cycle.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// CreateSandbox came twice.
    #[error("sandbox already created")]
    AlreadyCreated,
    /// The step changes machine-wide state and the agent is not in system mode.
    #[error("{0} needs system mode")]
    NeedsSystem(&'static str),
    /// The hostname is not a valid one.
    #[error("bad hostname {0:?}")]
    BadHostname(String),
    /// A DNS line is not a resolv.conf line.
    #[error("bad dns line {0:?}")]
    BadDns(String),
    /// A kernel module name or parameter is malformed.
    #[error("bad kernel module {0:?}")]
    BadModule(String),
    /// The image does not have the module.
    #[error("kernel module {0:?} not found under {1}")]
    ModuleNotFound(String, PathBuf),
    /// Guest hooks (`guest_hook_path`) are not supported.
    #[error("guest_hook_path is not supported")]
    GuestHooks,
    /// A sandbox storage failed.
    #[error("sandbox storage failed")]
    Storage(#[from] StorageError),
    /// The kernel refused the hostname.
    #[error("cannot set hostname {0:?}")]
    Hostname(String, #[source] std::io::Error),
    /// A guest file could not be written.
    #[error("cannot write {0}")]
    File(PathBuf, #[source] std::io::Error),
    /// A kernel module could not be loaded.
    #[error("cannot load kernel module {0:?}")]
    Module(String, #[source] std::io::Error),
    /// The shared namespaces could not be set up.
    #[error("sandbox namespaces")]
    Namespaces(#[from] NamespacesError),
}

/// The sandbox state.
#[derive(Debug, Default)]
pub struct Sandbox {
    created: bool,
    id: String,
    pidns: bool,
    undo: UndoStack,
    /// The namespaces the containers share, while the pause process holds them.
    namespaces: Option<SharedNamespaces>,
}

impl Sandbox {
    /// Whether CreateSandbox succeeded and DestroySandbox has not run since.
    pub fn is_created(&self) -> bool {
        self.created
    }

    /// The sandbox id the host gave.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether containers share one PID namespace (`sandbox_pidns`).
    pub fn shares_pidns(&self) -> bool {
        self.pidns
    }

    /// Sets the sandbox up; on error, nothing of it is left behind.
    pub fn create(
        &mut self,
        kernel: &dyn Kernel,
        config: &Config,
        req: &CreateSandboxRequest,
    ) -> Result<(), SandboxError> {
        if self.created {
            return Err(SandboxError::AlreadyCreated);
        }
        if !req.guest_hook_path.is_empty() {
            return Err(SandboxError::GuestHooks);
        }
        let mut undo = UndoStack::default();
        if let Err(e) = create_steps(kernel, config, req, &mut undo) {
            undo.unwind(kernel);
            return Err(e);
        }
        *self = Sandbox {
            created: true,
            id: req.sandbox_id.clone(),
            pidns: req.sandbox_pidns,
            undo,
            namespaces: None,
        };
        tracing::info!(sandbox_id = %self.id, "sandbox created");
        Ok(())
    }

    /// Starts the pause process holding the namespaces containers share, with the
    /// sandbox's `hostname` (empty: the agent's). Only root can hold them; an agent
    /// that is not root (and so cannot run containers) shares none.
    pub fn share_namespaces(
        &mut self,
        reaper: &Reaper,
        hostname: &str,
    ) -> Result<(), SandboxError> {
        if !nix::unistd::geteuid().is_root() {
            tracing::warn!("not root: containers will not share namespaces");
            return Ok(());
        }
        self.namespaces = Some(SharedNamespaces::start(reaper, hostname)?);
        Ok(())
    }

    /// The namespaces the containers share, if any are held.
    pub fn namespaces(&self) -> Option<&SharedNamespaces> {
        self.namespaces.as_ref()
    }

    /// Undoes everything the sandbox set up, newest first, after killing the pause
    /// process (and every process left in its pid namespace). Returns how many undo
    /// steps failed (they are logged).
    pub fn destroy(&mut self, kernel: &dyn Kernel) -> usize {
        self.namespaces = None;
        let failures = self.undo.unwind(kernel);
        tracing::info!(sandbox_id = %self.id, failures, "sandbox destroyed");
        *self = Sandbox::default();
        failures
    }
}

fn create_steps(
    kernel: &dyn Kernel,
    config: &Config,
    req: &CreateSandboxRequest,
    undo: &mut UndoStack,
) -> Result<(), SandboxError> {
    if !req.hostname.is_empty() {
        etc_files::set_hostname(kernel, config, &req.hostname, undo)?;
    }

    if !req.dns.is_empty() {
        etc_files::set_dns(config, &req.dns, undo)?;
    }

    for s in &req.storages {
        undo.append(storage::add(kernel, config, s)?);
    }

    modules::load_all(config, &req.kernel_modules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_init::kernel::fake::{Call, Recorder};
    use hull_protocols::agent::Storage;

    fn config(root: &std::path::Path) -> Config {
        Config {
            system: true,
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    fn shm() -> Storage {
        Storage {
            driver: "ephemeral".into(),
            source: "shm".into(),
            fstype: "tmpfs".into(),
            mount_point: "/run/kata-containers/sandbox/shm".into(),
            ..Default::default()
        }
    }

    fn request() -> CreateSandboxRequest {
        CreateSandboxRequest {
            hostname: "pod".into(),
            dns: vec!["nameserver 10.0.0.1".into()],
            storages: vec![shm()],
            sandbox_id: "sb1".into(),
            sandbox_pidns: true,
            ..Default::default()
        }
    }

    #[test]
    fn create_then_destroy_reverses_every_step() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let mut sandbox = Sandbox::default();
        sandbox
            .create(&k, &config(root.path()), &request())
            .unwrap();
        assert!(sandbox.is_created() && sandbox.shares_pidns());
        assert_eq!(sandbox.id(), "sb1");
        let err = sandbox
            .create(&k, &config(root.path()), &request())
            .unwrap_err();
        assert!(matches!(err, SandboxError::AlreadyCreated));

        assert_eq!(sandbox.destroy(&k), 0);
        let calls = k.calls();
        let umount = calls.iter().position(|c| matches!(c, Call::Umount(_)));
        let restore = calls
            .iter()
            .rposition(|c| matches!(c, Call::SetHostname(_)));
        assert!(
            umount < restore,
            "unmount comes before the hostname is restored"
        );
        assert!(!root.path().join("etc/resolv.conf").exists());
        assert!(!sandbox.is_created());
    }

    #[test]
    fn failed_storage_undoes_hostname_and_files() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let mut req = request();
        req.storages.push(Storage {
            driver: "nvdimm".into(),
            ..shm()
        });
        let mut sandbox = Sandbox::default();
        let err = sandbox.create(&k, &config(root.path()), &req).unwrap_err();
        assert_eq!(err.to_string(), "sandbox storage failed");
        assert!(!sandbox.is_created());
        assert_eq!(k.mount_targets().len(), k.umount_targets().len());
        assert!(!root.path().join("etc/hostname").exists());
    }

    #[test]
    fn guest_hooks_are_refused() {
        let mut req = request();
        req.guest_hook_path = "/hooks".into();
        let err = Sandbox::default()
            .create(&Recorder::new(), &Config::default(), &req)
            .unwrap_err();
        assert!(matches!(err, SandboxError::GuestHooks));
    }
}
