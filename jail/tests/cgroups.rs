//! Root tests of the container cgroup: pids and memory limits, OOM detection,
//! freezer, update and stats. Cgroups go under a test parent removed afterwards.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;

use common::{can_run, spec_json, text, Bundle, Jail};
use hull_jail::ExitStatus;

#[test]
fn a_pids_limit_stops_a_fork_bomb() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("exec sleep 1000");
    v["linux"]["resources"] = serde_json::json!({"pids": {"limit": 16}});
    let mut c = jail.create(&bundle, "forkbomb", &v);
    c.start().unwrap();
    let bomb = process(
        "i=0; while [ $i -lt 64 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); done; echo survived",
    );
    let out = c.exec(&bomb).unwrap().wait_with_output().unwrap();
    assert_ne!(out.status.code(), 0);
    assert!(text(&out.stderr).contains("fork"), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let pids = c.cgroup().pids();
    assert!(
        pids.len() <= 16,
        "{} processes in a cgroup limited to 16",
        pids.len()
    );
    assert!(
        pids.len() >= 10,
        "the loop should have filled the cgroup: {}",
        pids.len()
    );
    assert_eq!(c.stats().pids.limit, 16);
    c.destroy().unwrap();
}

fn process(script: &str) -> oci_spec::runtime::Process {
    serde_json::from_value(serde_json::json!({
        "args": ["/bin/sh", "-c", script], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0}
    }))
    .unwrap()
}

#[test]
fn a_memory_limit_oom_kills_and_is_detected() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("dd if=/dev/zero of=/dev/null bs=64M count=1");
    let limit = 16 * 1024 * 1024;
    v["linux"]["resources"] = serde_json::json!({"memory": {"limit": limit, "swap": limit}});
    let mut c = jail.create(&bundle, "oom", &v);
    let mut watcher = c.oom_watcher().unwrap();
    c.start().unwrap();
    let status = c.init().wait().unwrap();
    assert_eq!(status, ExitStatus::Signaled(9));
    let mut pfd = libc::pollfd {
        fd: watcher.fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; bounded wait so a missing event fails instead of hanging.
    let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(ready, 1, "no OOM notification");
    assert!(watcher.new_kills().unwrap() >= 1);
    assert!(c.cgroup().oom_kills().unwrap() >= 1);
    c.destroy().unwrap();
}

#[test]
fn pause_then_resume() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(&bundle, "freeze", &spec_json("read line; echo got $line"));
    c.start().unwrap();
    c.pause().unwrap();
    assert!(c.cgroup().is_frozen());
    assert!(
        c.exec(&process("true")).is_err(),
        "exec into a paused container"
    );
    let mut stdin = c.init().stdio().stdin.take().unwrap();
    stdin.write_all(b"hi\n").unwrap();
    let out = c.init().stdio().stdout.take().unwrap();
    let mut pfd = libc::pollfd {
        fd: out.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, 300) };
    assert_eq!(ready, 0, "a frozen container produced output");
    c.resume().unwrap();
    assert!(!c.cgroup().is_frozen());
    let got = hull_jail::process::read_to_end(out);
    assert_eq!(text(&got), "got hi\n");
    assert_eq!(c.init().wait().unwrap().code(), 0);
    c.destroy().unwrap();
}

#[test]
fn update_changes_limits_and_stats_report_usage() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("exec sleep 1000");
    v["linux"]["resources"] =
        serde_json::json!({"pids": {"limit": 100}, "memory": {"limit": 64 << 20}});
    let mut c = jail.create(&bundle, "update", &v);
    c.start().unwrap();
    let res =
        serde_json::from_value(serde_json::json!({"pids": {"limit": 50}, "cpu": {"shares": 512}}))
            .unwrap();
    c.update(&res).unwrap();
    let stats = c.stats();
    assert_eq!(stats.pids.limit, 50);
    assert_eq!(stats.pids.current, 1);
    let mem = stats.memory.memory.unwrap();
    assert_eq!(mem.limit, 64 << 20);
    assert!(mem.usage > 0);
    c.destroy().unwrap();
}

#[test]
fn signal_all_reaches_every_process() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(
        &bundle,
        "sigall",
        &spec_json("sleep 1000 & sleep 1000 & wait"),
    );
    c.start().unwrap();
    while c.cgroup().pids().len() < 3 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.signal_all(libc::SIGKILL).unwrap();
    assert_eq!(c.init().wait().unwrap().code(), 137);
    c.destroy().unwrap();
}
