//! Guest-wide RPC logic: details, the clock, entropy, CPU/memory hot-plug, and
//! finding hot-plugged block devices.

pub mod block;
pub mod hotplug;

use hull_init::random::RandomError;
use hull_protocols::agent::{AgentDetails, GuestDetailsRequest, GuestDetailsResponse};
use nix::sys::time::TimeSpec;
use nix::time::{clock_settime, ClockId};
use thiserror::Error;

use crate::config::Config;
use crate::sandbox::storage::DRIVERS;

/// The agent's version, as reported to the host.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of the guest-wide RPCs.
#[derive(Debug, Error)]
pub enum GuestError {
    /// The change is machine-wide and the agent is not in system mode.
    #[error("{0} needs system mode")]
    NeedsSystem(&'static str),
    /// The time given is out of range.
    #[error("bad time: sec {sec}, usec {usec}")]
    BadTime { sec: i64, usec: i64 },
    /// The kernel refused the new time.
    #[error("cannot set the clock")]
    Clock(#[source] nix::Error),
    /// ReseedRandomDev without data.
    #[error("no entropy data given")]
    NoEntropy,
    /// The kernel refused the entropy.
    #[error("cannot reseed the random pool")]
    Random(#[source] RandomError),
    /// A sysfs file could not be read or written.
    #[error("cannot access {0}")]
    Sysfs(std::path::PathBuf, #[source] std::io::Error),
    /// Fewer CPUs than asked came online in time.
    #[error("only {online} of {wanted} cpus came online")]
    NotOnline { wanted: u32, online: u32 },
}

/// Answers GetGuestDetails.
pub fn details(
    config: &Config,
    req: &GuestDetailsRequest,
) -> Result<GuestDetailsResponse, GuestError> {
    let mem_block_size_bytes = if req.mem_block_size {
        memory_block_size(config)?
    } else {
        0
    };
    Ok(GuestDetailsResponse {
        mem_block_size_bytes,
        agent_details: Some(agent_details(config)).into(),
        support_mem_hotplug_probe: false,
        ..Default::default()
    })
}

fn agent_details(config: &Config) -> AgentDetails {
    AgentDetails {
        version: AGENT_VERSION.to_string(),
        init_daemon: config.pid1,
        storage_handlers: DRIVERS.iter().map(|d| d.to_string()).collect(),
        supports_seccomp: crate::container::SUPPORTS_SECCOMP,
        ..Default::default()
    }
}

/// The memory hot-plug block size; 0 when the kernel has no memory hot-plug.
fn memory_block_size(config: &Config) -> Result<u64, GuestError> {
    let path = config
        .sysfs_dir()
        .join("devices/system/memory/block_size_bytes");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(GuestError::Sysfs(path, e)),
    };
    u64::from_str_radix(text.trim(), 16).map_err(|_| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "not a hex number");
        GuestError::Sysfs(path, e)
    })
}

/// Answers SetGuestDateTime.
pub fn set_time(config: &Config, sec: i64, usec: i64) -> Result<(), GuestError> {
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(GuestError::BadTime { sec, usec });
    }
    if !config.system {
        return Err(GuestError::NeedsSystem("setting the clock"));
    }
    let time = TimeSpec::new(sec, usec * 1000);
    clock_settime(ClockId::CLOCK_REALTIME, time).map_err(GuestError::Clock)
}

/// Answers ReseedRandomDev.
pub fn reseed(config: &Config, data: &[u8]) -> Result<(), GuestError> {
    if data.is_empty() {
        return Err(GuestError::NoEntropy);
    }
    if !config.system {
        return Err(GuestError::NeedsSystem("reseeding the random pool"));
    }
    let device = config.guest_path("/dev/random");
    hull_init::random::add_entropy(&device, data).map_err(GuestError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &std::path::Path) -> Config {
        Config {
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn block_size_is_read_as_hex_and_absent_is_zero() {
        let root = tempfile::tempdir().unwrap();
        let c = config(root.path());
        let req = GuestDetailsRequest {
            mem_block_size: true,
            ..Default::default()
        };
        assert_eq!(details(&c, &req).unwrap().mem_block_size_bytes, 0);
        let dir = root.path().join("sys/devices/system/memory");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("block_size_bytes"), "8000000\n").unwrap();
        let got = details(&c, &req).unwrap();
        assert_eq!(got.mem_block_size_bytes, 0x800_0000);
        let agent = got.agent_details.unwrap();
        assert_eq!(agent.version, AGENT_VERSION);
        assert!(agent.storage_handlers.contains(&"virtio-fs".to_string()));
        assert!(!got.support_mem_hotplug_probe);
    }

    #[test]
    fn time_and_entropy_are_checked_then_need_system() {
        let c = Config::default();
        assert!(matches!(
            set_time(&c, 1, 1_000_000),
            Err(GuestError::BadTime { .. })
        ));
        assert!(matches!(
            set_time(&c, -1, 0),
            Err(GuestError::BadTime { .. })
        ));
        assert!(matches!(
            set_time(&c, 1, 0),
            Err(GuestError::NeedsSystem(_))
        ));
        assert!(matches!(reseed(&c, &[]), Err(GuestError::NoEntropy)));
        assert!(matches!(reseed(&c, &[1]), Err(GuestError::NeedsSystem(_))));
    }
}
