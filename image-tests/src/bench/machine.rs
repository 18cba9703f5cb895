//! The facts a benchmark report is read against: the host (CPU model, cores,
//! memory, load when the run started) and the versions of what was measured.

use std::path::Path;

use serde::Serialize;

/// The host the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// MemTotal, bytes.
    pub memory_bytes: u64,
    /// The host's kernel release.
    pub host_kernel: String,
    /// The 1, 5 and 15 minute load averages when the run started.
    pub load_average: String,
}

/// Versions of the measured parts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Versions {
    /// The QEMU binary's version line.
    pub qemu: String,
    /// Hull's guest kernel release (`kernel.release` of the build).
    pub kernel: String,
    /// The agent's version as it reports it (else the build's `agent.version`).
    pub agent: String,
    /// Debian's kernel used for comparison, if any.
    pub debian_kernel: Option<String>,
    /// This harness.
    pub hull: String,
}

/// Describes this host.
pub fn machine() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    let loadavg = read("/proc/loadavg");
    let load_average = loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_bytes,
        host_kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        load_average,
    }
}

/// The versions known before booting anything (the agent's is replaced by
/// what the guest reports once it answers).
pub fn versions(build_dir: &Path, qemu: &Path) -> Versions {
    let file = |name: &str| {
        read(&build_dir.join(name).display().to_string())
            .trim()
            .to_string()
    };
    Versions {
        qemu: hull_runtime::host::qemu_version(qemu).unwrap_or_else(|| "unknown".into()),
        kernel: non_empty(file("kernel.release")),
        agent: non_empty(file("agent.version")),
        debian_kernel: None,
        hull: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn non_empty(s: String) -> String {
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_is_described() {
        let m = machine();
        assert!(m.cores >= 1);
        assert!(!m.cpu_model.is_empty());
        assert_eq!(m.load_average.split(' ').count(), 3, "{}", m.load_average);
    }

    #[test]
    fn missing_version_files_read_unknown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernel.release"), "6.12.118\n").unwrap();
        let v = versions(dir.path(), Path::new("/nonexistent/qemu"));
        assert_eq!(v.kernel, "6.12.118");
        assert_eq!(v.agent, "unknown");
        assert_eq!(v.qemu, "unknown");
    }
}
