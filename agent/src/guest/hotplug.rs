//! Onlining hot-plugged CPUs and memory through sysfs (OnlineCPUMem).
//!
//! CPUs: every `cpuN/online` that reads `0` gets `1`, until `nb_cpus` came online or
//! the hot-plug timeout passes (hot-plugged vCPUs appear a little after the host adds
//! them). Memory: every `memoryN/state` that reads `offline` gets `online`, unless
//! `cpu_only`. `nb_cpus` 0 asks for nothing and succeeds at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_protocols::agent::OnlineCPUMemRequest;

use super::GuestError;
use crate::config::Config;

/// Pause between scans for newly plugged CPUs.
const RESCAN_INTERVAL: Duration = Duration::from_millis(50);

/// Answers OnlineCPUMem.
pub async fn online(config: &Config, req: &OnlineCPUMemRequest) -> Result<(), GuestError> {
    if req.nb_cpus == 0 {
        return Ok(());
    }
    if !config.may_write_guest_files() {
        return Err(GuestError::NeedsSystem("onlining cpus"));
    }
    let sysfs = config.sysfs_dir();
    online_cpus(&sysfs, req.nb_cpus, config.hotplug_timeout, req.wait).await?;
    if !req.cpu_only {
        online_memory(&sysfs)?;
    }
    Ok(())
}

async fn online_cpus(
    sysfs: &Path,
    wanted: u32,
    timeout: Duration,
    wait: bool,
) -> Result<(), GuestError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut online = 0;
    loop {
        online += online_pass(&sysfs.join("devices/system/cpu"), "cpu", "online", "0", "1")?;
        if online >= wanted {
            return Ok(());
        }
        if !wait || tokio::time::Instant::now() >= deadline {
            return Err(GuestError::NotOnline { wanted, online });
        }
        tokio::time::sleep(RESCAN_INTERVAL).await;
    }
}

fn online_memory(sysfs: &Path) -> Result<u32, GuestError> {
    let dir = sysfs.join("devices/system/memory");
    if !dir.exists() {
        return Ok(0);
    }
    online_pass(&dir, "memory", "state", "offline", "online")
}

/// Writes `on` to `<dir>/<prefix>N/<file>` wherever it reads `off`; returns how many.
fn online_pass(
    dir: &Path,
    prefix: &str,
    file: &str,
    off: &str,
    on: &str,
) -> Result<u32, GuestError> {
    let mut count = 0;
    for control in controls(dir, prefix, file)? {
        let state =
            std::fs::read_to_string(&control).map_err(|e| GuestError::Sysfs(control.clone(), e))?;
        if state.trim() != off {
            continue;
        }
        std::fs::write(&control, on).map_err(|e| GuestError::Sysfs(control.clone(), e))?;
        count += 1;
    }
    Ok(count)
}

/// The `<prefix>N/<file>` paths below `dir`, in numeric order.
fn controls(dir: &Path, prefix: &str, file: &str) -> Result<Vec<PathBuf>, GuestError> {
    let entries = std::fs::read_dir(dir).map_err(|e| GuestError::Sysfs(dir.to_path_buf(), e))?;
    let mut numbered: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            let control = entry.path().join(file);
            control.exists().then_some((n, control))
        })
        .collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(cpus: &[&str], memory: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (i, state) in cpus.iter().enumerate() {
            let dir = root.path().join(format!("sys/devices/system/cpu/cpu{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("online"), state).unwrap();
        }
        for (i, state) in memory.iter().enumerate() {
            let dir = root
                .path()
                .join(format!("sys/devices/system/memory/memory{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("state"), state).unwrap();
        }
        root
    }

    fn config(root: &Path) -> Config {
        Config {
            root: root.to_path_buf(),
            hotplug_timeout: Duration::from_millis(100),
            ..Config::default()
        }
    }

    fn read(root: &Path, rel: &str) -> String {
        std::fs::read_to_string(root.join(rel)).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn onlines_offline_cpus_and_memory() {
        let root = fake_sysfs(&["1", "0", "0"], &["online", "offline"]);
        let req = OnlineCPUMemRequest {
            nb_cpus: 2,
            ..Default::default()
        };
        online(&config(root.path()), &req).await.unwrap();
        assert_eq!(read(root.path(), "sys/devices/system/cpu/cpu2/online"), "1");
        assert_eq!(
            read(root.path(), "sys/devices/system/memory/memory1/state"),
            "online"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn too_few_cpus_is_an_error_and_zero_is_a_no_op() {
        let root = fake_sysfs(&["1", "0"], &[]);
        let c = config(root.path());
        let req = OnlineCPUMemRequest {
            nb_cpus: 3,
            wait: true,
            cpu_only: true,
            ..Default::default()
        };
        let err = online(&c, &req).await.unwrap_err();
        assert!(matches!(
            err,
            GuestError::NotOnline {
                wanted: 3,
                online: 1
            }
        ));
        online(&Config::default(), &OnlineCPUMemRequest::default())
            .await
            .unwrap();
    }
}
