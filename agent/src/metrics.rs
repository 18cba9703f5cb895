//! The agent's own metrics, rendered in the Prometheus text format for GetMetrics.
//!
//! Per RPC: requests by status code, and the sum and count of durations. Per process:
//! resident memory, open descriptors, uptime.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct MethodStats {
    by_code: BTreeMap<&'static str, u64>,
    seconds: f64,
    count: u64,
}

/// Request counters and latencies, per RPC.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    methods: Mutex<BTreeMap<String, MethodStats>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            methods: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, method: &str, code: &'static str, took: Duration) {
        let mut methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let stats = methods.entry(method.to_string()).or_default();
        *stats.by_code.entry(code).or_default() += 1;
        stats.seconds += took.as_secs_f64();
        stats.count += 1;
    }

    /// All metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_process(&mut out);
        self.render_requests(&mut out);
        out
    }

    fn render_process(&self, out: &mut String) {
        let uptime = self.started.elapsed().as_secs_f64();
        gauge(
            out,
            "hull_agent_uptime_seconds",
            "Seconds since the agent started.",
            uptime,
        );
        if let Some(rss) = resident_bytes() {
            gauge(
                out,
                "hull_agent_resident_memory_bytes",
                "Resident memory of the agent.",
                rss as f64,
            );
        }
        if let Some(fds) = open_fds() {
            gauge(
                out,
                "hull_agent_open_fds",
                "Open file descriptors of the agent.",
                fds as f64,
            );
        }
        for (name, help, value) in guest_gauges() {
            gauge(out, name, help, value);
        }
    }

    fn render_requests(&self, out: &mut String) {
        let methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        header(
            out,
            "hull_agent_rpc_requests_total",
            "counter",
            "Requests served, by RPC and status.",
        );
        for (method, stats) in methods.iter() {
            for (code, n) in &stats.by_code {
                let labels = format!("method=\"{method}\",code=\"{code}\"");
                let _ = writeln!(out, "hull_agent_rpc_requests_total{{{labels}}} {n}");
            }
        }
        let name = "hull_agent_rpc_duration_seconds";
        header(out, name, "summary", "Time spent serving requests, by RPC.");
        for (method, stats) in methods.iter() {
            let _ = writeln!(out, "{name}_sum{{method=\"{method}\"}} {}", stats.seconds);
            let _ = writeln!(out, "{name}_count{{method=\"{method}\"}} {}", stats.count);
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// VmRSS of this process, in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What only the guest can see: the agent's anonymous memory and start time (seconds
/// after the kernel started: the hand-over to /init when PID 1), and the guest's memory.
fn guest_gauges() -> Vec<(&'static str, &'static str, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let found = [
        (
            "hull_agent_anon_memory_bytes",
            "Anonymous resident memory of the agent.",
            kib_field(&status, "RssAnon:"),
        ),
        (
            "hull_agent_started_after_boot_seconds",
            "When the agent started, after boot.",
            started_after_boot(),
        ),
        (
            "hull_guest_memory_total_bytes",
            "MemTotal of the guest.",
            kib_field(&meminfo, "MemTotal:"),
        ),
        (
            "hull_guest_memory_available_bytes",
            "MemAvailable of the guest.",
            kib_field(&meminfo, "MemAvailable:"),
        ),
    ];
    found
        .into_iter()
        .filter_map(|(n, h, v)| Some((n, h, v?)))
        .collect()
}

fn kib_field(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? * 1024.0)
}

/// Field 22 of /proc/self/stat (start time in clock ticks after boot), in seconds.
fn started_after_boot() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let ticks: f64 = stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    // SAFETY: sysconf reads a constant and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Number of open descriptors of this process.
pub fn open_fds() -> Option<usize> {
    // The directory stream itself holds one descriptor while counting.
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_sums_per_method_and_code() {
        let m = Metrics::default();
        m.record("Check", "OK", Duration::from_millis(2));
        m.record("Check", "OK", Duration::from_millis(3));
        m.record("CopyFile", "PERMISSION_DENIED", Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("hull_agent_rpc_requests_total{method=\"Check\",code=\"OK\"} 2\n"));
        assert!(text.contains(
            "hull_agent_rpc_requests_total{method=\"CopyFile\",code=\"PERMISSION_DENIED\"} 1\n"
        ));
        assert!(text.contains("hull_agent_rpc_duration_seconds_count{method=\"Check\"} 2\n"));
        assert!(text.contains("# TYPE hull_agent_open_fds gauge"));
        assert!(text.contains("\nhull_agent_anon_memory_bytes "), "{text}");
        assert!(
            text.contains("\nhull_guest_memory_available_bytes "),
            "{text}"
        );
        assert!(started_after_boot().is_some_and(|s| s > 0.0));
        let rss = resident_bytes().unwrap();
        assert!(rss > 0);
    }
}
