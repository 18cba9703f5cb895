//! Reads the agent's `GetMetrics` answer (Prometheus text exposition format)
//! into a map from series (name with its labels, as written) to value.
//!
//! Limitation: only what the bench needs: comments are skipped, timestamps after
//! the value are ignored, and label values are not unescaped.

use std::collections::BTreeMap;

/// Agent resident memory (VmRSS), bytes.
pub const AGENT_RSS: &str = "hull_agent_resident_memory_bytes";
/// Agent anonymous resident memory (RssAnon), bytes.
pub const AGENT_ANON: &str = "hull_agent_anon_memory_bytes";
/// The guest's MemTotal, bytes.
pub const GUEST_MEM_TOTAL: &str = "hull_guest_memory_total_bytes";
/// The guest's MemAvailable, bytes.
pub const GUEST_MEM_AVAILABLE: &str = "hull_guest_memory_available_bytes";
/// When the agent process started, seconds after the guest kernel started.
pub const AGENT_STARTED: &str = "hull_agent_started_after_boot_seconds";

/// Series and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples(BTreeMap<String, f64>);

impl Samples {
    /// Parses the exposition text; lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self(series)
    }

    /// The value of the series `name` (without labels).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// The guest's used memory: MemTotal - MemAvailable.
    pub fn guest_used(&self) -> Option<f64> {
        Some(self.get(GUEST_MEM_TOTAL)? - self.get(GUEST_MEM_AVAILABLE)?)
    }
}

fn parse_line(line: &str) -> Option<(String, f64)> {
    // The series ends at the first space after any label set.
    let end = match line.find('}') {
        Some(close) => close + 1,
        None => line.find(char::is_whitespace)?,
    };
    let (series, rest) = line.split_at(end);
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((series.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_labelled_series() {
        let text = "# HELP hull_agent_resident_memory_bytes Resident memory.\n\
            # TYPE hull_agent_resident_memory_bytes gauge\n\
            hull_agent_resident_memory_bytes 2621440\n\
            hull_agent_rpc_requests_total{method=\"Check\",code=\"OK\"} 3\n\
            hull_guest_memory_total_bytes 500000000\n\
            hull_guest_memory_available_bytes 480000000 1700000000\n\
            broken_line\n";
        let s = Samples::parse(text);
        assert_eq!(s.get(AGENT_RSS), Some(2_621_440.0));
        assert_eq!(
            s.get("hull_agent_rpc_requests_total{method=\"Check\",code=\"OK\"}"),
            Some(3.0)
        );
        assert_eq!(s.guest_used(), Some(20_000_000.0));
        assert_eq!(s.get("broken_line"), None);
        assert_eq!(s.get(AGENT_ANON), None);
    }
}
