//! Containers in the guest: the table of containers and their processes, and the
//! operations behind the container and process RPCs.
//!
//! Design: the [`Containers`] table has its own lock, held only to look up, insert or
//! remove an entry. Each [`ContainerEntry`] holds the jail's container behind a lock
//! of its own; every jail call blocks (it talks to a re-executed child, freezes
//! cgroups ...), so it runs on a blocking thread ([`ContainerEntry::with_jail`]) and
//! never on the runtime's thread. Process exits come from the agent's one reaper
//! (the jail waits for its helpers through [`JailReaper`]); output is pumped into
//! buffers as soon as it is written ([`stdio`]).
//!
//! CreateContainer also waits for the container's [`devices`] and rewrites the spec
//! for them, joins the sandbox's shared ipc, uts and (with `sandbox_pidns`) pid
//! namespaces ([`sandbox_ns`]), adds the [`shared_mounts`], and maps a systemd
//! `cgroupsPath` to cgroupfs ([`cgroup_path`]).
//!
//! Limitations: the vsock stdio ports of CreateContainer/ExecProcess are refused
//! (UNIMPLEMENTED): the wire contract does not say who connects nor how streams end;
//! VFIO devices are refused (UNIMPLEMENTED).

pub mod cgroup_path;
pub mod devices;
pub mod lifecycle;
pub mod process;
pub mod sandbox_ns;
pub mod shared_mounts;
pub mod spec;
pub mod stats;
pub mod stdio;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use hull_init::reaper::Reaper;
use hull_jail::JailError;
use hull_protocols::oci_convert::OciConvertError;
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::sandbox::namespaces::NamespacesError;
use crate::sandbox::storage::StorageError;
use crate::sandbox::undo::UndoStack;
pub use devices::DeviceError;
pub use process::ProcessEntry;

/// Whether containers can get a seccomp filter (the jail compiles OCI profiles to BPF
/// itself, on every supported architecture).
pub const SUPPORTS_SECCOMP: bool = true;

/// Errors of the container and process RPCs.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// No container with this id.
    #[error("container {0:?} not found")]
    NotFound(String),
    /// The container id is taken.
    #[error("container {0:?} already exists")]
    Exists(String),
    /// No process with this exec id in the container.
    #[error("process {exec_id:?} not found in container {container_id:?}")]
    ProcessNotFound {
        container_id: String,
        exec_id: String,
    },
    /// The exec id is taken in the container.
    #[error("process {0:?} already exists")]
    ProcessExists(String),
    /// A required field is empty or malformed.
    #[error("{field}: {problem}")]
    BadField { field: String, problem: String },
    /// The spec does not convert.
    #[error("bad spec")]
    Spec(#[source] OciConvertError),
    /// A field this agent does not support was set.
    #[error("{0} is not supported by the Hull agent")]
    Unsupported(&'static str),
    /// A container storage failed.
    #[error("container storage failed")]
    Storage(#[from] StorageError),
    /// A device of the container.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A field needs a sandbox that holds shared namespaces.
    #[error("{0} needs a sandbox holding shared namespaces (CreateSandbox first)")]
    NoSandboxNamespaces(&'static str),
    /// The sandbox's shared namespaces are gone.
    #[error("cannot join the sandbox namespaces")]
    SandboxNamespaces(#[source] NamespacesError),
    /// A shared mount's source container does not exist.
    #[error("shared_mounts[{0}].src_ctr: container {1:?} not found")]
    SharedMountSource(usize, String),
    /// The jail failed.
    #[error("jail")]
    Jail(#[from] JailError),
    /// The process has exited (the text Kata runtimes match on).
    #[error("ESRCH: No such process: process {0:?} has exited")]
    Exited(String),
    /// The process has no terminal.
    #[error("process {0:?} has no terminal")]
    NoTerminal(String),
    /// A window size out of range.
    #[error("bad window size {0}x{1}")]
    BadWindowSize(u32, u32),
    /// Resizing the terminal failed.
    #[error("cannot resize the terminal of process {0:?}")]
    Resize(String, #[source] hull_jail::tty::TtyError),
    /// Stdin was closed before.
    #[error("stdin of process {0:?} is closed")]
    StdinClosed(String),
    /// Stdio handling failed.
    #[error("stdio of process {0:?}")]
    Stdio(String, #[source] std::io::Error),
    /// A signal failed.
    #[error("cannot signal process {0:?}")]
    Signal(String, #[source] hull_jail::process::ProcessError),
    /// The container did not stop in time.
    #[error("container {0:?} did not stop within {1} s")]
    Timeout(String, u32),
    /// The container was removed while the operation ran.
    #[error("container {0:?} was removed")]
    Removed(String),
    /// A blocking task failed.
    #[error("container task failed: {0}")]
    Task(String),
}

/// The adapter through which the jail waits for its helper processes: the agent's
/// reaper, waited on from the jail's blocking thread.
pub struct JailReaper(pub Reaper);

impl hull_jail::Reaper for JailReaper {
    fn wait(&self, pid: i32) -> std::io::Result<hull_jail::ExitStatus> {
        use hull_init::reaper::ExitStatus as S;
        match self.0.wait_blocking(pid) {
            Ok(S::Exited(code)) => Ok(hull_jail::ExitStatus::Exited(code)),
            Ok(S::Signaled(sig)) => Ok(hull_jail::ExitStatus::Signaled(sig)),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// The table of containers.
#[derive(Default)]
pub struct Containers {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Arc<ContainerEntry>>,
    /// Ids being created: taken, but not yet in `entries`.
    reserved: HashSet<String>,
}

impl Containers {
    /// The container with this id or CRI name, if any.
    pub fn find(&self, id_or_name: &str) -> Option<Arc<ContainerEntry>> {
        let table = self.lock();
        if let Some(entry) = table.entries.get(id_or_name) {
            return Some(entry.clone());
        }
        table
            .entries
            .values()
            .find(|e| !e.name.is_empty() && e.name == id_or_name)
            .cloned()
    }

    /// The container `id`.
    pub fn get(&self, id: &str) -> Result<Arc<ContainerEntry>, ContainerError> {
        self.lock()
            .entries
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))
    }

    /// Every container, for teardown.
    pub fn all(&self) -> Vec<Arc<ContainerEntry>> {
        self.lock().entries.values().cloned().collect()
    }

    /// How many containers there are.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `id` for a container being created; [`Containers::insert`] or
    /// [`Containers::release`] ends the reservation.
    pub fn reserve(&self, id: &str) -> Result<(), ContainerError> {
        let mut table = self.lock();
        if table.entries.contains_key(id) || !table.reserved.insert(id.to_string()) {
            return Err(ContainerError::Exists(id.to_string()));
        }
        Ok(())
    }

    /// Gives up a reservation.
    pub fn release(&self, id: &str) {
        self.lock().reserved.remove(id);
    }

    /// Adds a created container under its reserved id.
    pub fn insert(&self, entry: Arc<ContainerEntry>) {
        let mut table = self.lock();
        table.reserved.remove(&entry.id);
        table.entries.insert(entry.id.clone(), entry);
    }

    /// Drops `id` from the table.
    pub fn remove(&self, id: &str) {
        self.lock().entries.remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One container: the jail's handle, its processes, its storages.
pub struct ContainerEntry {
    pub id: String,
    /// Its CRI name (from the spec's annotations), or empty.
    pub name: String,
    /// The jail's container; `None` once destroyed.
    jail: Arc<Mutex<Option<hull_jail::Container>>>,
    processes: Mutex<HashMap<String, Arc<ProcessEntry>>>,
    /// Exec ids being started.
    starting: Mutex<HashSet<String>>,
    /// The init process.
    pub init: Arc<ProcessEntry>,
    /// The container's storages, undone on removal.
    pub storages: Mutex<UndoStack>,
    /// The OOM watch task.
    pub oom_task: Mutex<Option<JoinHandle<()>>>,
}

impl ContainerEntry {
    /// A new entry around a created container.
    pub fn new(
        container: hull_jail::Container,
        init: ProcessEntry,
        storages: UndoStack,
    ) -> ContainerEntry {
        ContainerEntry {
            id: container.id().to_string(),
            name: shared_mounts::cri_name(container.spec()),
            jail: Arc::new(Mutex::new(Some(container))),
            processes: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashSet::new()),
            init: Arc::new(init),
            storages: Mutex::new(storages),
            oom_task: Mutex::new(None),
        }
    }

    /// Runs `f` on the jail's container on a blocking thread.
    pub async fn with_jail<T, F>(&self, f: F) -> Result<T, ContainerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut hull_jail::Container) -> Result<T, ContainerError> + Send + 'static,
    {
        let jail = self.jail.clone();
        let id = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = jail.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(container) => f(container),
                None => Err(ContainerError::Removed(id)),
            }
        })
        .await
        .map_err(|e| ContainerError::Task(e.to_string()))?
    }

    /// Takes the jail's container out (for destruction) on a blocking thread and
    /// runs `f` on it there.
    pub async fn take_jail<F>(&self, f: F) -> Result<(), ContainerError>
    where
        F: FnOnce(hull_jail::Container) -> Result<(), ContainerError> + Send + 'static,
    {
        let jail = self.jail.clone();
        tokio::task::spawn_blocking(move || {
            let taken = jail.lock().unwrap_or_else(|e| e.into_inner()).take();
            match taken {
                Some(container) => f(container),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| ContainerError::Task(e.to_string()))?
    }

    /// Whether `exec_id` names the init process ("" or the container id).
    pub fn is_init(&self, exec_id: &str) -> bool {
        exec_id.is_empty() || exec_id == self.id
    }

    /// The process `exec_id`.
    pub fn process(&self, exec_id: &str) -> Result<Arc<ProcessEntry>, ContainerError> {
        if self.is_init(exec_id) {
            return Ok(self.init.clone());
        }
        self.lock_processes()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ContainerError::ProcessNotFound {
                container_id: self.id.clone(),
                exec_id: exec_id.to_string(),
            })
    }

    /// Every process, the init process first.
    pub fn processes(&self) -> Vec<Arc<ProcessEntry>> {
        let mut all = vec![self.init.clone()];
        all.extend(self.lock_processes().values().cloned());
        all
    }

    /// Takes `exec_id` for a process being started.
    pub fn reserve_exec(&self, exec_id: &str) -> Result<(), ContainerError> {
        let taken = self.is_init(exec_id) || self.lock_processes().contains_key(exec_id);
        let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if taken || !starting.insert(exec_id.to_string()) {
            return Err(ContainerError::ProcessExists(exec_id.to_string()));
        }
        Ok(())
    }

    /// Ends a reservation, adding the process if it started.
    pub fn finish_exec(&self, exec_id: &str, process: Option<ProcessEntry>) {
        if let Some(p) = process {
            self.lock_processes()
                .insert(exec_id.to_string(), Arc::new(p));
        }
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(exec_id);
    }

    fn lock_processes(&self) -> MutexGuard<'_, HashMap<String, Arc<ProcessEntry>>> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }
}
