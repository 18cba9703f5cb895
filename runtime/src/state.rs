//! Sandbox state on disk, so that any `hull` process can find a sandbox:
//! `<root>/<id>/` (root `/run/hull`, or `HULL_STATE_DIR`) holds `state.json`,
//! the supervisor's control socket, the VM's sockets and logs, and the shared
//! directory. The directory exists exactly as long as the sandbox does; the
//! supervisor removes it when the VM ends.
//!
//! Containers are recorded in `<root>/<id>/containers/<container id>`, one JSON
//! file each, so that any process can find the sandbox holding a container. A
//! container id is unique across the state root (and differs from every other
//! sandbox's id); the checks and the new record happen under an exclusive
//! `flock` of the root directory. A sandbox's id also names its first container.
//!
//! State files are written to a temporary name and renamed, so readers never
//! see half of one.

use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::vm::spec::VmSpec;
use crate::vm::VmPids;

/// The environment variable overriding the state root.
pub const STATE_DIR_ENV: &str = "HULL_STATE_DIR";
/// The default state root.
pub const DEFAULT_ROOT: &str = "/run/hull";

const STATE_FILE: &str = "state.json";
const SPEC_FILE: &str = "spec.json";
const CONTAINERS_DIR: &str = "containers";
const MAX_ID_LEN: usize = 64;

/// Errors reading or writing sandbox state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id is not usable as a directory or file name.
    #[error(
        "invalid id {0:?}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.' or '-'"
    )]
    BadId(String),
    /// A sandbox or container with this id exists.
    #[error("id {0} is already in use by a sandbox or container")]
    Exists(String),
    /// No sandbox with this id.
    #[error("no sandbox {0}")]
    NotFound(String),
    /// No container with this id in any sandbox.
    #[error("no container {0} (see `hull ps`)")]
    NoContainer(String),
    /// The state root could not be locked.
    #[error("cannot lock the state root {}", .0.display())]
    Lock(PathBuf, #[source] nix::Error),
    /// A file could not be read or written.
    #[error("cannot access {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    /// A state file is malformed.
    #[error("malformed state file {}", .0.display())]
    Parse(PathBuf, #[source] serde_json::Error),
}

/// What a running sandbox's supervisor records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxState {
    /// The sandbox id.
    pub id: String,
    /// Seconds since the epoch when it was created.
    pub created: u64,
    /// The supervisor's pid.
    pub supervisor: u32,
    /// QEMU's and the helpers' pids.
    pub pids: VmPids,
    /// When QEMU was started, in milliseconds since the epoch.
    #[serde(default)]
    pub qemu_started_ms: u64,
}

/// A container of a sandbox, as recorded in `containers/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// The sandbox holding it.
    pub sandbox: String,
    /// Seconds since the epoch when it was recorded.
    pub created: u64,
    /// Its root filesystem on the host.
    pub rootfs: PathBuf,
}

/// The state root: `HULL_STATE_DIR` or `/run/hull`.
pub fn root() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// Checks that `id` is a safe directory name.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with(['.', '-'])
        && id.chars().all(ok_char);
    if valid {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

/// A random sandbox id (12 hex digits).
pub fn new_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if bytes == [0; 6] {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One sandbox's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    id: String,
    path: PathBuf,
}

impl StateDir {
    /// Creates the directory for a new sandbox `id` under `root`; `id` must not
    /// name a container of another sandbox either.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        std::fs::create_dir_all(root).map_err(|e| StateError::Io(root.to_path_buf(), e))?;
        let _lock = lock_root(root)?;
        if find_record(root, id)?.is_some() {
            return Err(StateError::Exists(id.to_string()));
        }
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(Self {
                id: id.to_string(),
                path,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(id.to_string()))
            }
            Err(e) => Err(StateError::Io(path, e)),
        }
    }

    /// Opens the directory of an existing sandbox.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Self {
            id: id.to_string(),
            path,
        })
    }

    /// The sandbox id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The supervisor's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    /// The supervisor's own log.
    pub fn supervisor_log(&self) -> PathBuf {
        self.path.join("supervisor.log")
    }

    /// The directory shared with the guest.
    pub fn shared_dir(&self) -> PathBuf {
        self.path.join("shared")
    }

    /// Writes the VM spec the supervisor starts.
    pub fn write_spec(&self, spec: &VmSpec) -> Result<(), StateError> {
        self.write_json(SPEC_FILE, spec)
    }

    /// Reads the VM spec.
    pub fn read_spec(&self) -> Result<VmSpec, StateError> {
        self.read_json(SPEC_FILE)
    }

    /// Writes the running state.
    pub fn write_state(&self, state: &SandboxState) -> Result<(), StateError> {
        self.write_json(STATE_FILE, state)
    }

    /// Reads the running state (absent while the VM is starting).
    pub fn read_state(&self) -> Result<Option<SandboxState>, StateError> {
        if !self.path.join(STATE_FILE).exists() {
            return Ok(None);
        }
        self.read_json(STATE_FILE).map(Some)
    }

    /// Where the container records are.
    fn containers_dir(&self) -> PathBuf {
        self.path.join(CONTAINERS_DIR)
    }

    /// Records container `record.id` in this sandbox, unless its id is taken:
    /// by a container of any sandbox, or by another sandbox.
    pub fn add_container(&self, record: &ContainerRecord) -> Result<(), StateError> {
        validate_id(&record.id)?;
        let root = self.root();
        let _lock = lock_root(&root)?;
        let other_sandbox = record.id != self.id && root.join(&record.id).is_dir();
        if other_sandbox || find_record(&root, &record.id)?.is_some() {
            return Err(StateError::Exists(record.id.clone()));
        }
        let dir = self.containers_dir();
        std::fs::create_dir_all(&dir).map_err(|e| StateError::Io(dir, e))?;
        self.write_json(&format!("{CONTAINERS_DIR}/{}", record.id), record)
    }

    /// The record of container `id`, if this sandbox holds it.
    pub fn container(&self, id: &str) -> Result<Option<ContainerRecord>, StateError> {
        validate_id(id)?;
        let name = format!("{CONTAINERS_DIR}/{id}");
        if !self.path.join(&name).is_file() {
            return Ok(None);
        }
        self.read_json(&name).map(Some)
    }

    /// The ids of the containers recorded here, sorted.
    pub fn containers(&self) -> Result<Vec<String>, StateError> {
        valid_names(&self.containers_dir(), |p| p.is_file())
    }

    /// Forgets container `id` (nothing happens if it is not recorded).
    pub fn remove_container(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let path = self.containers_dir().join(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io(path, e)),
            _ => Ok(()),
        }
    }

    /// The state root this directory is in.
    fn root(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io(self.path.clone(), e)),
        }
    }

    /// Writes `name` (relative to the directory) through a temporary file in
    /// the same directory.
    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let path = self.path.join(name);
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{file}.tmp"));
        let text =
            serde_json::to_vec_pretty(value).map_err(|e| StateError::Parse(path.clone(), e))?;
        std::fs::write(&tmp, text).map_err(|e| StateError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StateError::Io(path, e))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, StateError> {
        let path = self.path.join(name);
        let text = std::fs::read(&path).map_err(|e| StateError::Io(path.clone(), e))?;
        serde_json::from_slice(&text).map_err(|e| StateError::Parse(path, e))
    }
}

/// The ids of all sandboxes under `root`, sorted.
pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
    valid_names(root, |p| p.is_dir())
}

/// The entries of `dir` that are valid ids and pass `keep`, sorted; none when
/// `dir` does not exist.
fn valid_names(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<String>, StateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::Io(dir.to_path_buf(), e)),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| keep(&e.path()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The sandbox holding container `id`: the one that records it, else the
/// sandbox named `id` (whose first container it is).
pub fn find_container(root: &Path, id: &str) -> Result<StateDir, StateError> {
    validate_id(id)?;
    if let Some(sandbox) = find_record(root, id)? {
        return StateDir::open(root, &sandbox);
    }
    StateDir::open(root, id).map_err(|e| match e {
        StateError::NotFound(_) => StateError::NoContainer(id.to_string()),
        other => other,
    })
}

/// The id of the sandbox under `root` that records container `id`.
fn find_record(root: &Path, id: &str) -> Result<Option<String>, StateError> {
    for sandbox in list(root)? {
        let recorded = root.join(&sandbox).join(CONTAINERS_DIR).join(id);
        if recorded.is_file() {
            return Ok(Some(sandbox));
        }
    }
    Ok(None)
}

/// An exclusive lock on the state root, held until dropped.
fn lock_root(root: &Path) -> Result<Flock<std::fs::File>, StateError> {
    let dir = std::fs::File::open(root).map_err(|e| StateError::Io(root.to_path_buf(), e))?;
    Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, errno)| StateError::Lock(root.to_path_buf(), errno))
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["abc", "a-b_c.d", "0123456789ab"] {
            validate_id(good).unwrap();
        }
        for bad in ["", ".hidden", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
        validate_id(&new_id()).unwrap();
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn create_open_list_remove() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "s1").unwrap();
        assert!(matches!(
            StateDir::create(root.path(), "s1"),
            Err(StateError::Exists(_))
        ));
        assert_eq!(dir.read_state().unwrap(), None);
        let state = SandboxState {
            id: "s1".into(),
            created: 1,
            supervisor: 42,
            pids: VmPids::default(),
            qemu_started_ms: 0,
        };
        dir.write_state(&state).unwrap();
        let again = StateDir::open(root.path(), "s1").unwrap();
        assert_eq!(again.read_state().unwrap(), Some(state));
        assert_eq!(list(root.path()).unwrap(), vec!["s1".to_string()]);
        dir.remove().unwrap();
        assert!(matches!(
            StateDir::open(root.path(), "s1"),
            Err(StateError::NotFound(_))
        ));
        assert!(list(&root.path().join("none")).unwrap().is_empty());
    }

    fn record(id: &str, sandbox: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            sandbox: sandbox.into(),
            created: 1,
            rootfs: "/srv/rootfs".into(),
        }
    }

    #[test]
    fn containers_are_recorded_found_and_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let a = StateDir::create(root.path(), "a").unwrap();
        let b = StateDir::create(root.path(), "b").unwrap();
        assert!(a.containers().unwrap().is_empty());
        a.add_container(&record("a", "a")).unwrap();
        a.add_container(&record("web", "a")).unwrap();
        assert_eq!(a.containers().unwrap(), vec!["a", "web"]);
        assert_eq!(a.container("web").unwrap(), Some(record("web", "a")));
        assert_eq!(b.container("web").unwrap(), None);
        assert_eq!(find_container(root.path(), "web").unwrap().id(), "a");
        a.remove_container("web").unwrap();
        a.remove_container("web").unwrap();
        assert_eq!(a.containers().unwrap(), vec!["a"]);
        assert!(!root.path().join("a/containers/.web.tmp").exists());
    }

    #[test]
    fn container_ids_are_unique_across_the_root() {
        let root = tempfile::tempdir().unwrap();
        let a = StateDir::create(root.path(), "a").unwrap();
        let b = StateDir::create(root.path(), "b").unwrap();
        a.add_container(&record("web", "a")).unwrap();
        let taken = |r| matches!(r, Err(StateError::Exists(_)));
        assert!(taken(b.add_container(&record("web", "b"))));
        assert!(taken(a.add_container(&record("web", "a"))));
        // Another sandbox's id is taken; a sandbox's own id is its first container's.
        assert!(taken(a.add_container(&record("b", "a"))));
        b.add_container(&record("b", "b")).unwrap();
        assert!(matches!(
            StateDir::create(root.path(), "web"),
            Err(StateError::Exists(_))
        ));
        assert!(matches!(
            a.add_container(&record("../x", "a")),
            Err(StateError::BadId(_))
        ));
    }

    #[test]
    fn a_sandbox_id_names_its_first_container() {
        let root = tempfile::tempdir().unwrap();
        StateDir::create(root.path(), "solo").unwrap();
        assert_eq!(find_container(root.path(), "solo").unwrap().id(), "solo");
        let missing = find_container(root.path(), "nobody").unwrap_err();
        assert!(matches!(missing, StateError::NoContainer(_)), "{missing}");
        assert!(missing.to_string().contains("no container nobody"));
        assert!(matches!(
            find_container(root.path(), "a/b"),
            Err(StateError::BadId(_))
        ));
    }

    #[test]
    fn our_own_pid_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }
}
