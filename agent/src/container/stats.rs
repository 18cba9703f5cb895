//! The jail's cgroup statistics as the protocol's `CgroupStats`.
//!
//! Limits the kernel reports as "no limit" (negative in cgroups-rs) become 0, and the
//! memory counters that have no field of their own go to `memory_stats.stats` under
//! their cgroup v1 names.

use std::collections::HashMap;

use hull_jail::cgroups_stats::{BlkioStat, CgroupStats as Stats, MemoryStats as Memory};
use hull_protocols::agent::{
    BlkioStats, BlkioStatsEntry, CgroupStats, CpuStats, CpuUsage, HugetlbStats, MemoryData,
    MemoryStats, PidsStats, ThrottlingData,
};

/// Converts the jail's statistics.
pub fn to_proto(stats: &Stats) -> CgroupStats {
    CgroupStats {
        cpu_stats: Some(cpu(stats)).into(),
        memory_stats: Some(memory(stats)).into(),
        pids_stats: Some(PidsStats {
            current: stats.pids.current,
            limit: non_negative(stats.pids.limit),
            ..Default::default()
        })
        .into(),
        blkio_stats: Some(blkio(stats)).into(),
        hugetlb_stats: stats
            .hugetlb
            .iter()
            .map(|(size, h)| {
                let h = HugetlbStats {
                    usage: h.usage,
                    max_usage: h.max_usage,
                    failcnt: h.fail_cnt,
                    ..Default::default()
                };
                (size.clone(), h)
            })
            .collect(),
        ..Default::default()
    }
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn cpu(stats: &Stats) -> CpuStats {
    let usage = stats.cpu.cpu_acct.as_ref().map(|a| CpuUsage {
        total_usage: a.total_usage,
        percpu_usage: a.usage_percpu.clone(),
        usage_in_kernelmode: a.system_usage,
        usage_in_usermode: a.user_usage,
        ..Default::default()
    });
    let throttling = stats.cpu.cpu_throttling.as_ref().map(|t| ThrottlingData {
        periods: t.periods,
        throttled_periods: t.throttled_periods,
        throttled_time: t.throttled_time,
        ..Default::default()
    });
    CpuStats {
        cpu_usage: usage.into(),
        throttling_data: throttling.into(),
        ..Default::default()
    }
}

fn memory_data(m: &Memory) -> MemoryData {
    MemoryData {
        usage: m.usage,
        max_usage: m.max_usage,
        failcnt: m.fail_cnt,
        limit: non_negative(m.limit),
        ..Default::default()
    }
}

fn memory(stats: &Stats) -> MemoryStats {
    let m = &stats.memory;
    let counters: HashMap<String, u64> = [
        ("rss", m.rss),
        ("rss_huge", m.rss_huge),
        ("shmem", m.shmem),
        ("mapped_file", m.mapped_file),
        ("dirty", m.dirty),
        ("writeback", m.writeback),
        ("swap", m.swap),
        ("pgpgin", m.pgpgin),
        ("pgpgout", m.pgpgout),
        ("pgfault", m.pgfault),
        ("pgmajfault", m.pgmajfault),
        ("inactive_anon", m.inactive_anon),
        ("active_anon", m.active_anon),
        ("inactive_file", m.inactive_file),
        ("active_file", m.active_file),
        ("unevictable", m.unevictable),
        ("total_cache", m.total_cache),
        ("total_rss", m.total_rss),
        ("total_inactive_file", m.total_inactive_file),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    MemoryStats {
        cache: m.cache,
        usage: m.memory.as_ref().map(memory_data).into(),
        swap_usage: m.memory_swap.as_ref().map(memory_data).into(),
        kernel_usage: m.kernel_memory.as_ref().map(memory_data).into(),
        use_hierarchy: m.use_hierarchy,
        stats: counters,
        ..Default::default()
    }
}

fn entries(list: &[BlkioStat]) -> Vec<BlkioStatsEntry> {
    list.iter()
        .map(|e| BlkioStatsEntry {
            major: e.major,
            minor: e.minor,
            op: e.op.clone(),
            value: e.value,
            ..Default::default()
        })
        .collect()
}

fn blkio(stats: &Stats) -> BlkioStats {
    let b = &stats.blkio;
    BlkioStats {
        io_service_bytes_recursive: entries(&b.io_service_bytes_recursive),
        io_serviced_recursive: entries(&b.io_serviced_recursive),
        io_queued_recursive: entries(&b.io_queued_recursive),
        io_service_time_recursive: entries(&b.io_service_time_recursive),
        io_wait_time_recursive: entries(&b.io_wait_time_recursive),
        io_merged_recursive: entries(&b.io_merged_recursive),
        io_time_recursive: entries(&b.io_time_recursive),
        sectors_recursive: entries(&b.sectors_recursive),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_limits_are_carried_over() {
        let mut s = Stats::default();
        s.pids.current = 3;
        s.pids.limit = -1;
        s.memory.memory = Some(Memory {
            usage: 4096,
            max_usage: 8192,
            limit: 1 << 20,
            fail_cnt: 1,
        });
        s.memory.rss = 100;
        let p = to_proto(&s);
        assert_eq!(p.pids_stats.current, 3);
        assert_eq!(p.pids_stats.limit, 0, "no limit reads as 0");
        let usage = p.memory_stats.usage.as_ref().unwrap();
        assert_eq!(
            (usage.usage, usage.limit, usage.failcnt),
            (4096, 1 << 20, 1)
        );
        assert_eq!(p.memory_stats.stats["rss"], 100);
        assert!(p.cpu_stats.cpu_usage.is_none());
    }
}
