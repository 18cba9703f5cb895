//! The agent's typed configuration, from the kernel command line (as PID 1) or from
//! command-line flags (as a normal process, for tests and development).
//!
//! The kernel command line must never stop the guest from booting: unknown `agent.*`
//! keys and malformed values become [`Warning`]s (logged once, once logging is up) and
//! the default is kept. Flags, typed by a person, are strict: a bad flag is an error.
//!
//! Two settings decide how far the agent may reach outside itself:
//! - `system`: change machine-wide state (hostname, clock, mounts, entropy, modules,
//!   `oom_score_adj`, power off). On as PID 1; off otherwise unless `--system`.
//! - `root`: the directory every guest path (`/etc`, `/run/kata-containers`, `/sys`,
//!   `/lib/modules`) is resolved under; `/` normally, a temporary directory in tests.

mod args;
mod cmdline;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::{parse_args, ArgsError, Invocation, USAGE};
pub use cmdline::from_cmdline;

/// Default listen address: any CID, port 1024.
pub const DEFAULT_SERVER_ADDR: &str = "vsock://-1:1024";
/// Default seconds to wait for a hot-plugged device.
pub const DEFAULT_HOTPLUG_TIMEOUT: Duration = Duration::from_secs(3);
/// Default log level.
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;
/// Where the host expects the guest's shared directory for container files.
pub const GUEST_SHARED_DIR: &str = "/run/kata-containers/shared/containers";
/// The guest's Kata run directory.
pub const GUEST_KATA_DIR: &str = "/run/kata-containers";

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" | "fatal" | "critical" | "panic" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!("unknown log level {s:?}")),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?} (text or json)")),
        }
    }
}

/// Where the API server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    /// `vsock://CID:PORT`; CID -1 means any.
    Vsock { cid: i64, port: u32 },
    /// `unix:///path`.
    Unix(PathBuf),
    /// `serial:///path`: a virtio-serial port (a character device) carrying one
    /// ttrpc stream at a time, for hosts and machines without vsock.
    Serial(PathBuf),
}

impl ServerAddr {
    /// The address in ttrpc's URI form.
    pub fn uri(&self) -> String {
        match self {
            ServerAddr::Vsock { cid, port } => format!("vsock://{cid}:{port}"),
            ServerAddr::Unix(path) => format!("unix://{}", path.display()),
            ServerAddr::Serial(path) => format!("serial://{}", path.display()),
        }
    }
}

impl std::str::FromStr for ServerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            return absolute(s, path, "unix socket").map(ServerAddr::Unix);
        }
        if let Some(path) = s.strip_prefix("serial://") {
            return absolute(s, path, "serial port").map(ServerAddr::Serial);
        }
        let rest = s
            .strip_prefix("vsock://")
            .ok_or_else(|| format!("address {s:?} is not vsock://, unix:// or serial://"))?;
        let (cid, port) = rest
            .split_once(':')
            .ok_or_else(|| format!("vsock address {s:?} lacks :PORT"))?;
        let cid: i64 = cid.parse().map_err(|_| format!("bad vsock cid in {s:?}"))?;
        if cid < -1 || cid > i64::from(u32::MAX) {
            return Err(format!("bad vsock cid in {s:?}"));
        }
        let port = port
            .parse()
            .map_err(|_| format!("bad vsock port in {s:?}"))?;
        Ok(ServerAddr::Vsock { cid, port })
    }
}

/// `path` of address `addr` as a path, if absolute.
fn absolute(addr: &str, path: &str, what: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!("{what} path in {addr:?} must be absolute"));
    }
    Ok(PathBuf::from(path))
}

/// The agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// Vsock port to stream logs to the host on; 0 = the console.
    pub log_vport: u32,
    pub debug_console: bool,
    /// Vsock port of the debug shell; 0 = on the console.
    pub debug_console_vport: u32,
    pub server_addr: ServerAddr,
    pub hotplug_timeout: Duration,
    /// Pipe size for container stdio; 0 = kernel default.
    pub container_pipe_size: u32,
    pub devmode: bool,
    /// Whether the agent may change machine-wide state.
    pub system: bool,
    /// Whether the agent is the init of its PID namespace.
    pub pid1: bool,
    /// The directory guest paths are resolved under.
    pub root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: DEFAULT_LOG_LEVEL,
            log_format: LogFormat::Text,
            log_vport: 0,
            debug_console: false,
            debug_console_vport: 0,
            server_addr: ServerAddr::Vsock {
                cid: -1,
                port: 1024,
            },
            hotplug_timeout: DEFAULT_HOTPLUG_TIMEOUT,
            container_pipe_size: 0,
            devmode: false,
            system: false,
            pid1: false,
            root: PathBuf::from("/"),
        }
    }
}

impl Config {
    /// `path` (an absolute guest path) resolved under [`Config::root`].
    pub fn guest_path(&self, path: impl AsRef<Path>) -> PathBuf {
        let relative = path.as_ref().strip_prefix("/").unwrap_or(path.as_ref());
        self.root.join(relative)
    }

    /// Whether files under the guest paths may be written: in system mode, or when the
    /// guest paths are redirected away from the real root.
    pub fn may_write_guest_files(&self) -> bool {
        self.system || self.root != Path::new("/")
    }

    /// `/etc` of the guest.
    pub fn etc_dir(&self) -> PathBuf {
        self.guest_path("/etc")
    }

    /// The directory CopyFile writes below.
    pub fn shared_dir(&self) -> PathBuf {
        self.guest_path(GUEST_SHARED_DIR)
    }

    /// `/sys` of the guest.
    pub fn sysfs_dir(&self) -> PathBuf {
        self.guest_path("/sys")
    }

    /// `/lib/modules` of the guest.
    pub fn modules_dir(&self) -> PathBuf {
        self.guest_path("/lib/modules")
    }
}

/// Something odd in the configuration that did not stop the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// An `agent.*` key the agent does not know.
    UnknownKey(String),
    /// A known key with a value that does not parse; the default was kept.
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::UnknownKey(key) => write!(f, "unknown option {key} ignored"),
            Warning::BadValue { key, value, reason } => {
                write!(f, "bad value {value:?} for {key} ({reason}); default kept")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addr_forms() {
        assert_eq!(
            "vsock://-1:1024".parse::<ServerAddr>().unwrap(),
            ServerAddr::Vsock {
                cid: -1,
                port: 1024
            }
        );
        assert_eq!(
            "unix:///tmp/a.sock".parse::<ServerAddr>().unwrap(),
            ServerAddr::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            DEFAULT_SERVER_ADDR.parse::<ServerAddr>().unwrap().uri(),
            DEFAULT_SERVER_ADDR
        );
        let serial = "serial:///dev/virtio-ports/agent.channel.0";
        assert_eq!(
            serial.parse::<ServerAddr>().unwrap(),
            ServerAddr::Serial("/dev/virtio-ports/agent.channel.0".into())
        );
        assert_eq!(serial.parse::<ServerAddr>().unwrap().uri(), serial);
        for bad in [
            "tcp://x:1",
            "vsock://3",
            "vsock://-2:1",
            "vsock://a:1",
            "unix://rel",
            "serial://",
            "serial://dev/vport0p1",
        ] {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn guest_paths_follow_root() {
        let mut c = Config::default();
        assert_eq!(c.etc_dir(), PathBuf::from("/etc"));
        assert!(!c.may_write_guest_files());
        c.root = "/tmp/t".into();
        assert_eq!(
            c.shared_dir(),
            PathBuf::from("/tmp/t/run/kata-containers/shared/containers")
        );
        assert!(c.may_write_guest_files());
    }

    #[test]
    fn log_levels_parse_case_insensitively() {
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("warning".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert!("loud".parse::<LogLevel>().is_err());
    }
}
