//! The container's cgroup, with `cgroups-rs`: resources (cpu, cpuset, memory, pids,
//! io/blkio, hugetlb, devices, network classes), freezer, stats, updates, and
//! killing everything inside. Works on cgroup v2 (the guest) and v1.
//!
//! On cgroup v2 device rules become an eBPF program ([`devices`]).
//!
//! Limitations: `unified` keys are refused on v1. Kernel memory limits,
//! `memory.useHierarchy`, `cpu.idle`, `cpu.burst` and rdma are refused.

pub mod devices;
pub mod oom;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::{hierarchies, Cgroup as FsCgroup};
use cgroups_rs::stats::CpuAcctStats;
use cgroups_rs::{CgroupPid, CgroupStats, FreezerState, FsManager, Manager};
use oci_spec::runtime::{LinuxMemory, LinuxResources};

use crate::config::CgroupDir;
use crate::spec::{invalid, SpecError};

/// How long to wait for processes to leave or freeze before giving up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// cgroups-rs failed.
    #[error("cgroup {path}: {what}")]
    Manager {
        /// The cgroup, relative to the hierarchy roots.
        path: String,
        /// The operation.
        what: &'static str,
        /// Why (boxed: the manager's error is large).
        #[source]
        source: Box<cgroups_rs::manager::Error>,
    },
    /// A cgroup file could not be read or written.
    #[error("cgroup file {0}")]
    File(PathBuf, #[source] std::io::Error),
    /// A state did not settle in time.
    #[error("cgroup {0}: {1} did not happen within {SETTLE_TIMEOUT:?}")]
    Timeout(String, &'static str),
    /// The resources are not valid for this cgroup version.
    #[error("invalid resources")]
    Spec(#[from] SpecError),
}

/// A container's cgroup.
pub struct Cgroup {
    path: String,
    manager: FsManager,
    fs: FsCgroup,
    /// The device program attached on cgroup v2, replaced on update.
    device_prog: Option<std::os::fd::OwnedFd>,
}

impl std::fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cgroup").field("path", &self.path).finish()
    }
}

impl Cgroup {
    /// A handle for the cgroup at `path` (relative to each hierarchy's root); it is
    /// created when the first process is added.
    pub fn new(path: &str) -> Result<Cgroup, CgroupError> {
        let path = path.trim_start_matches('/').to_string();
        let manager = FsManager::new(&path).map_err(|source| CgroupError::Manager {
            path: path.clone(),
            what: "open",
            source: Box::new(source),
        })?;
        let fs = FsCgroup::load(hierarchies::auto(), &path);
        Ok(Cgroup {
            path,
            manager,
            fs,
            device_prog: None,
        })
    }

    fn err(&self, what: &'static str) -> impl FnOnce(cgroups_rs::manager::Error) -> CgroupError {
        let path = self.path.clone();
        move |source| CgroupError::Manager {
            path,
            what,
            source: Box::new(source),
        }
    }

    /// The path, relative to the hierarchy roots.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is the cgroup v2 unified hierarchy.
    pub fn v2(&self) -> bool {
        self.manager.v2()
    }

    /// Moves process `pid` in, creating the cgroup if needed.
    pub fn add_process(&mut self, pid: i32) -> Result<(), CgroupError> {
        let pid = CgroupPid::from(pid as u64);
        self.manager.add_proc(pid).map_err(self.err("add process"))
    }

    /// Applies (or updates) resource limits.
    pub fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate_resources(resources)?;
        let mut res = resources.clone();
        if self.v2() {
            if let Some(rules) = res.devices().as_ref().filter(|d| !d.is_empty()) {
                let dir = Path::new(cgroups_rs::fs::cgroup::UNIFIED_MOUNTPOINT).join(&self.path);
                let prog = devices::attach(&dir, rules, self.device_prog.as_ref())
                    .map_err(|e| CgroupError::File(dir.clone(), e))?;
                self.device_prog = Some(prog);
            }
            res.set_devices(None);
            if let Some(memory) = *res.memory() {
                let dir = Path::new(cgroups_rs::fs::cgroup::UNIFIED_MOUNTPOINT).join(&self.path);
                if !dir.join("memory.swap.max").exists() {
                    set_memory_without_swap(&dir, &memory)?;
                    res.set_memory(None);
                }
            }
            self.write_unified(res.unified().clone().unwrap_or_default())?;
        } else if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(invalid("linux.resources.unified", "needs cgroup v2").into());
        }
        check_hugepage_sizes(&res)?;
        self.manager.set(&res).map_err(self.err("set resources"))
    }

    fn write_unified(&self, keys: HashMap<String, String>) -> Result<(), CgroupError> {
        let dir = Path::new(cgroups_rs::fs::cgroup::UNIFIED_MOUNTPOINT).join(&self.path);
        for (key, value) in keys {
            if key.contains('/') || key.starts_with('.') {
                return Err(
                    invalid(format!("linux.resources.unified.{key}"), "not a file name").into(),
                );
            }
            let file = dir.join(&key);
            std::fs::write(&file, value).map_err(|e| CgroupError::File(file, e))?;
        }
        Ok(())
    }

    /// The container's directory in each hierarchy, for `cgroup` mounts.
    pub fn dirs(&self) -> Vec<CgroupDir> {
        if self.v2() {
            let host_path = Path::new(cgroups_rs::fs::cgroup::UNIFIED_MOUNTPOINT).join(&self.path);
            return vec![CgroupDir {
                hierarchy: String::new(),
                host_path,
            }];
        }
        let mut out: Vec<CgroupDir> = Vec::new();
        for sub in self.fs.subsystems() {
            let host_path = sub.to_controller().path().to_path_buf();
            let Some(root) = strip_suffix(&host_path, &self.path) else {
                continue;
            };
            let Some(name) = root.file_name() else {
                continue;
            };
            let hierarchy = name.to_string_lossy().into_owned();
            if host_path.is_dir() && !out.iter().any(|d| d.hierarchy == hierarchy) {
                out.push(CgroupDir {
                    hierarchy,
                    host_path,
                });
            }
        }
        out
    }

    /// The ids of the processes in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        self.fs.procs().iter().map(|p| p.pid as i32).collect()
    }

    /// Freezes every process in the cgroup, waiting until they are frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.manager
            .freeze(FreezerState::Frozen)
            .map_err(self.err("freeze"))?;
        self.settle("freeze", || {
            matches!(self.freezer_state(), Some(FreezerState::Frozen))
        })
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.manager
            .freeze(FreezerState::Thawed)
            .map_err(self.err("thaw"))
    }

    /// Whether the cgroup is frozen (or freezing).
    pub fn is_frozen(&self) -> bool {
        matches!(
            self.freezer_state(),
            Some(FreezerState::Frozen | FreezerState::Freezing)
        )
    }

    fn freezer_state(&self) -> Option<FreezerState> {
        let freezer: &cgroups_rs::fs::freezer::FreezerController = self.fs.controller_of()?;
        freezer.state().ok()
    }

    fn settle(&self, what: &'static str, done: impl Fn() -> bool) -> Result<(), CgroupError> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done() {
            if Instant::now() > deadline {
                return Err(CgroupError::Timeout(self.path.clone(), what));
            }
            std::thread::sleep(SETTLE_POLL);
        }
        Ok(())
    }

    /// Sends `signal` to every process in the cgroup. The cgroup is frozen while the
    /// signal goes out, so a process forking at that moment cannot escape.
    pub fn signal_all(&self, signal: i32) -> Result<(), CgroupError> {
        let was_frozen = self.is_frozen();
        if !was_frozen {
            self.freeze()?;
        }
        for pid in self.pids() {
            // SAFETY: kill takes plain integers; a vanished pid only yields ESRCH.
            unsafe { libc::kill(pid, signal) };
        }
        if !was_frozen || signal == libc::SIGKILL {
            self.thaw()?;
        }
        Ok(())
    }

    /// Resource usage, for StatsContainer. On v2, where there is no cpuacct
    /// controller, CPU time comes from the cgroup's `cpu.stat`.
    pub fn stats(&self) -> CgroupStats {
        let mut stats = self.manager.stats();
        if self.v2() && stats.cpu.cpu_acct.is_none() {
            let file = Path::new(cgroups_rs::fs::cgroup::UNIFIED_MOUNTPOINT)
                .join(&self.path)
                .join("cpu.stat");
            stats.cpu.cpu_acct = std::fs::read_to_string(file)
                .ok()
                .map(|text| v2_cpu_usage(&text));
        }
        stats
    }

    /// The number of OOM kills in this cgroup so far.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        oom::read_oom_kills(&self.memory_dir(), self.v2())
    }

    /// The memory controller's directory.
    pub fn memory_dir(&self) -> PathBuf {
        let dirs = self.dirs();
        let pick = |name: &str| dirs.iter().find(|d| d.hierarchy == name);
        pick("")
            .or_else(|| pick("memory"))
            .map(|d| d.host_path.clone())
            .unwrap_or_default()
    }

    /// Kills whatever is left and removes the cgroup in every hierarchy.
    pub fn destroy(&mut self) -> Result<(), CgroupError> {
        if !self.fs.exists() {
            return Ok(());
        }
        if !self.pids().is_empty() {
            self.signal_all(libc::SIGKILL)?;
            self.settle("emptying", || self.pids().is_empty())?;
        }
        self.manager.destroy().map_err(self.err("remove"))
    }
}

fn strip_suffix(path: &Path, suffix: &str) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in Path::new(suffix).components() {
        if !p.pop() {
            return None;
        }
    }
    Some(p)
}

/// CPU time from a v2 `cpu.stat` (microseconds), in nanoseconds as cpuacct
/// gives its total.
fn v2_cpu_usage(text: &str) -> CpuAcctStats {
    let nanos = |key: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(key)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            .saturating_mul(1000)
    };
    CpuAcctStats {
        user_usage: nanos("user_usec"),
        system_usage: nanos("system_usec"),
        total_usage: nanos("usage_usec"),
        usage_percpu: Vec::new(),
    }
}

/// Memory limits on a v2 cgroup of a kernel built without swap (no
/// `memory.swap.max`, which `cgroups-rs` would write). A swap limit can only ask
/// for no swap then: `swap` equal to `limit`, 0 or -1; any other is refused.
fn set_memory_without_swap(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(swap) = memory.swap() {
        if !(swap == 0 || swap == -1 || Some(swap) == memory.limit()) {
            return Err(invalid(
                "linux.resources.memory.swap",
                "asks for swap, but the kernel has no swap",
            )
            .into());
        }
    }
    let write = |name: &str, value: String| {
        let file = dir.join(name);
        std::fs::write(&file, value).map_err(|e| CgroupError::File(file, e))
    };
    let bytes = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(limit) = memory.limit() {
        write("memory.max", bytes(limit))?;
    }
    if let Some(reservation) = memory.reservation() {
        write("memory.low", bytes(reservation))?;
    }
    Ok(())
}

fn check_hugepage_sizes(res: &LinuxResources) -> Result<(), SpecError> {
    for (i, limit) in res
        .hugepage_limits()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let kb = parse_page_size(limit.page_size()).ok_or_else(|| {
            invalid(
                format!("linux.resources.hugepageLimits[{i}].pageSize"),
                "malformed",
            )
        })?;
        let dir = format!("/sys/kernel/mm/hugepages/hugepages-{kb}kB");
        if !Path::new(&dir).exists() {
            let field = format!("linux.resources.hugepageLimits[{i}].pageSize");
            return Err(invalid(
                field,
                format!("{} is not supported here", limit.page_size()),
            ));
        }
    }
    Ok(())
}

/// "2MB" → 2048 (kB).
fn parse_page_size(s: &str) -> Option<u64> {
    let units = [("KB", 1u64), ("MB", 1024), ("GB", 1024 * 1024)];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))?;
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Refuses resource fields the jail does not apply, naming them.
pub fn validate_resources(res: &LinuxResources) -> Result<(), SpecError> {
    let unsupported = |f: &str| Err(SpecError::Unsupported { field: f.into() });
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return unsupported("linux.resources.rdma");
    }
    if let Some(m) = res.memory() {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            return unsupported("linux.resources.memory.kernel");
        }
        if m.use_hierarchy().is_some() {
            return unsupported("linux.resources.memory.useHierarchy");
        }
    }
    if let Some(c) = res.cpu() {
        if c.idle().is_some() || c.burst().is_some() {
            return unsupported("linux.resources.cpu.idle");
        }
    }
    for (i, d) in res
        .devices()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let access = d.access().as_deref().unwrap_or_default();
        if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(invalid(
                format!("linux.resources.devices[{i}].access"),
                format!("{access:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_without_swap_writes_limits_and_refuses_swap() {
        let dir = tempfile::tempdir().unwrap();
        let memory = |v: serde_json::Value| -> LinuxMemory { serde_json::from_value(v).unwrap() };
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

        let no_swap =
            memory(serde_json::json!({"limit": 1048576, "swap": 1048576, "reservation": 4096}));
        set_memory_without_swap(dir.path(), &no_swap).unwrap();
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("memory.low"), "4096");
        set_memory_without_swap(dir.path(), &memory(serde_json::json!({"limit": -1}))).unwrap();
        assert_eq!(read("memory.max"), "max");

        let swap = memory(serde_json::json!({"limit": 1048576, "swap": 2097152}));
        let err = set_memory_without_swap(dir.path(), &swap).unwrap_err();
        assert!(
            matches!(&err, CgroupError::Spec(SpecError::Invalid { field, .. }) if field == "linux.resources.memory.swap"),
            "{err:?}"
        );
    }

    #[test]
    fn v2_cpu_time_is_read_in_nanoseconds() {
        let text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n";
        let usage = v2_cpu_usage(text);
        assert_eq!(usage.total_usage, 1_500_000);
        assert_eq!(usage.user_usage, 1_000_000);
        assert_eq!(usage.system_usage, 500_000);
        assert_eq!(v2_cpu_usage("").total_usage, 0);
    }

    #[test]
    fn page_sizes_parse() {
        assert_eq!(parse_page_size("2MB"), Some(2048));
        assert_eq!(parse_page_size("1GB"), Some(1024 * 1024));
        assert_eq!(parse_page_size("64KB"), Some(64));
        assert_eq!(parse_page_size("2M"), None);
    }

    #[test]
    fn unsupported_resources_are_named() {
        let res: LinuxResources =
            serde_json::from_value(serde_json::json!({"memory": {"kernel": 1024}})).unwrap();
        assert_eq!(
            validate_resources(&res).unwrap_err().field(),
            "linux.resources.memory.kernel"
        );
        let res: LinuxResources = serde_json::from_value(
            serde_json::json!({"devices": [{"allow": true, "access": "rwx"}]}),
        )
        .unwrap();
        assert_eq!(
            validate_resources(&res).unwrap_err().field(),
            "linux.resources.devices[0].access"
        );
    }

    #[test]
    fn suffixes_strip_by_component() {
        let p = Path::new("/sys/fs/cgroup/memory/hull/c1");
        assert_eq!(
            strip_suffix(p, "hull/c1").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }
}
