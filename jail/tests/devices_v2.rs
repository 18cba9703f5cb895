//! The cgroup v2 device program, attached for real to a cgroup in a cgroup2
//! hierarchy (on a v1 host, the empty unified hierarchy serves).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4).map(PathBuf::from))
}

#[test]
fn device_rules_allow_and_deny_for_real() {
    if !common::can_run() {
        return;
    }
    let Some(root) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 hierarchy mounted");
        return;
    };
    let dir = root.join(format!("hull-jail-devices-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let mut child = Command::new("/bin/sh")
        .args(["-c", "read go; head -c 1 /dev/null && echo null-ok; head -c 1 /dev/zero >/dev/null && echo zero-ok"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]))
        .unwrap();
    let prog = hull_jail::cgroups::devices::attach(&dir, &rules, None);
    assert!(prog.is_ok(), "attach: {prog:?}");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    drop(prog);
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(out, "null-ok\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}
