//! No leaks: after many create/start/wait/destroy cycles, no zombie, no extra
//! descriptor in this process, no cgroup and no mount left behind.

mod common;

use common::{can_run, spec_json, Bundle, Jail};

const CYCLES: usize = 200;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me {
            out.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    out
}

fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn cycles_leave_nothing_behind() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("echo hi");
    v["linux"]["resources"] =
        serde_json::json!({"pids": {"limit": 32}, "memory": {"limit": 64 << 20}});
    // Warm up once so lazily opened descriptors (e.g. /dev/null) exist before counting.
    jail.run(&bundle, &v);
    let (fds, mnts) = (open_fds(), mounts());
    let started = std::time::Instant::now();
    for i in 0..CYCLES {
        let id = format!("leak{i}");
        let mut c = jail.create(&bundle, &id, &v);
        c.start().unwrap();
        let out = c.init().wait_with_output().unwrap();
        assert_eq!(out.stdout, b"hi\n", "cycle {i}");
        c.destroy().unwrap();
    }
    let per_cycle = started.elapsed() / CYCLES as u32;
    assert_eq!(zombie_children(), Vec::<i32>::new(), "zombies");
    assert_eq!(open_fds(), fds, "descriptors");
    assert_eq!(mounts(), mnts, "mounts");
    for dir in jail.cgroup_dirs() {
        let children: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(
            children.is_empty(),
            "cgroups left in {}: {children:?}",
            dir.display()
        );
    }
    eprintln!("{CYCLES} cycles clean; {per_cycle:?} per create/start/wait/destroy");
}
