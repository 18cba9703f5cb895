//! Sandbox state on disk, so that any `hull` process can find a sandbox:
//! `<root>/<id>/` (root `/run/hull`, or `HULL_STATE_DIR`) holds `state.json`,
//! the supervisor's control socket, the VM's sockets and logs, and the shared
//! directory. The directory exists exactly as long as the sandbox does; the
//! supervisor removes it when the VM ends.
//!
//! `state.json` is written to a temporary name and renamed, so readers never see
//! half of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::vm::spec::VmSpec;
use crate::vm::VmPids;

/// The environment variable overriding the state root.
pub const STATE_DIR_ENV: &str = "HULL_STATE_DIR";
/// The default state root.
pub const DEFAULT_ROOT: &str = "/run/hull";

const STATE_FILE: &str = "state.json";
const SPEC_FILE: &str = "spec.json";
const MAX_ID_LEN: usize = 64;

/// Errors reading or writing sandbox state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id is not usable as a directory name.
    #[error("invalid sandbox id {0:?}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.' or '-'")]
    BadId(String),
    /// A sandbox with this id exists.
    #[error("sandbox {0} already exists")]
    Exists(String),
    /// No sandbox with this id.
    #[error("no sandbox {0}")]
    NotFound(String),
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
    /// Creates the directory for a new sandbox `id` under `root`.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        std::fs::create_dir_all(root).map_err(|e| StateError::Io(root.to_path_buf(), e))?;
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

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io(self.path.clone(), e)),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
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
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::Io(root.to_path_buf(), e)),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
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

    #[test]
    fn our_own_pid_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }
}
