//! Root tests of the container's filesystem view and process attributes: bind
//! mounts, cgroup mounts, /dev, devices, sysctls, rlimits, oom_score_adj,
//! no_new_privileges.

mod common;

use common::{can_run, spec_json, text, Bundle, Jail};

#[test]
fn a_readonly_bind_mount_reads_but_refuses_writes() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("data"), "from the host\n").unwrap();
    let mut v = spec_json(
        "cat /mnt/shared/data; touch /mnt/shared/new; cat /mnt/rw/data; touch /mnt/rw/new",
    );
    let mounts = v["mounts"].as_array_mut().unwrap();
    mounts.push(
        serde_json::json!({"destination": "/mnt/shared", "type": "bind",
        "source": shared.path(), "options": ["rbind", "ro", "nosuid", "rprivate"]}),
    );
    mounts.push(serde_json::json!({"destination": "/mnt/rw", "type": "bind",
        "source": shared.path(), "options": ["bind"]}));
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "from the host\nfrom the host\n");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        shared.path().join("new").exists(),
        "the writable bind writes through"
    );
}

#[test]
fn the_cgroup_mount_shows_the_containers_own_cgroup() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v =
        spec_json("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max");
    v["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}));
    v["linux"]["resources"] = serde_json::json!({"pids": {"limit": 42}});
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "42\n", "{}", text(&out.stderr));
}

#[test]
fn dev_has_the_default_devices_links_and_spec_devices() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json(
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] || echo missing $d; done; \
         for l in fd stdin stdout stderr ptmx; do [ -L /dev/$l ] || echo nolink $l; done; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
         stat -c '%t:%T %a %u' /dev/mydev; mount | grep -c ' /dev/shm '",
    );
    v["linux"]["devices"] = serde_json::json!([
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 7, "gid": 7}
    ]);
    let out = jail.run(&bundle, &v);
    assert_eq!(
        text(&out.stdout),
        "4\n1:3 600 7\n1\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sysctls_rlimits_oom_score_and_no_new_privileges_apply() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut v = spec_json(
        "cat /proc/sys/net/ipv4/ip_forward; ulimit -n; cat /proc/self/oom_score_adj; \
         grep NoNewPrivs /proc/self/status",
    );
    let flipped = if host_forward.trim() == "1" { "0" } else { "1" };
    v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": flipped});
    v["process"]["rlimits"] =
        serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1234, "soft": 1234}]);
    v["process"]["oomScoreAdj"] = serde_json::json!(500);
    let out = jail.run(&bundle, &v);
    assert_eq!(
        text(&out.stdout),
        format!("{flipped}\n1234\n500\nNoNewPrivs:\t1\n"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
}
