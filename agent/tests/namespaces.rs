//! The agent with system mode in fresh namespaces (root only): as PID 1 of a PID
//! namespace (early mounts, hostname, power off on DestroySandbox), and as a normal
//! process whose storage mounts are made and undone for real.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{can_unshare, ctx, AgentProcess};
use hull_protocols::agent::*;
use hull_protocols::health::CheckRequest;

/// The agent's pid: the only child of the `unshare --fork` process.
fn forked_child(agent: &AgentProcess) -> u32 {
    let pid = agent.child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

/// (mount point, fstype) pairs seen by `pid`.
fn mounts_of(pid: u32) -> Vec<(String, String)> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?.to_string();
            let fstype = right.split(' ').next()?.to_string();
            Some((point, fstype))
        })
        .collect()
}

fn has_mount(mounts: &[(String, String)], point: &Path, fstype: &str) -> bool {
    let point = point.display().to_string();
    mounts.iter().any(|(p, t)| *p == point && t == fstype)
}

fn hostname_of(pid: u32) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-u", "hostname"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn shm_storage() -> Storage {
    Storage {
        driver: "ephemeral".into(),
        source: "shm".into(),
        fstype: "tmpfs".into(),
        mount_point: "/run/kata-containers/sandbox/shm".into(),
        options: vec![
            "nosuid".into(),
            "nodev".into(),
            "mode=1777".into(),
            "size=1m".into(),
        ],
        ..Default::default()
    }
}

fn wait_exit(agent: &mut AgentProcess) -> std::process::ExitStatus {
    for _ in 0..2000 {
        if let Some(status) = agent.child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("agent did not power off:\n{}", agent.log());
}

#[tokio::test(flavor = "current_thread")]
async fn as_pid1_it_boots_sets_the_hostname_and_powers_off() {
    if !can_unshare() {
        eprintln!("skipped: needs root and unshare");
        return;
    }
    let wrapper = [
        "unshare",
        "--uts",
        "--mount",
        "--net",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
    ];
    let mut agent = AgentProcess::start_with(&wrapper, &[]);
    let pid = forked_child(&agent);
    let host_name = nix::unistd::gethostname().unwrap();
    let (client, health) = agent.client().await;
    health.check(ctx(), &CheckRequest::new()).await.unwrap();

    let req = CreateSandboxRequest {
        hostname: "hull-pid1".into(),
        dns: vec!["nameserver 10.0.0.9".into()],
        storages: vec![shm_storage()],
        sandbox_id: "sb-pid1".into(),
        ..Default::default()
    };
    client.create_sandbox(ctx(), &req).await.unwrap();

    assert_eq!(hostname_of(pid), "hull-pid1");
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        host_name,
        "host untouched"
    );
    let hostname_file = agent.guest("/etc/hostname");
    assert_eq!(
        std::fs::read_to_string(&hostname_file).unwrap(),
        "hull-pid1\n"
    );
    let mounts = mounts_of(pid);
    let shm = agent.guest("/run/kata-containers/sandbox/shm");
    assert!(has_mount(&mounts, &shm, "tmpfs"), "{mounts:?}");
    assert!(
        has_mount(&mounts, Path::new("/sys/fs/cgroup"), "cgroup2"),
        "{mounts:?}"
    );
    assert!(has_mount(&mounts, Path::new("/tmp"), "tmpfs"), "{mounts:?}");
    assert!(
        !has_mount(&mounts_of(std::process::id()), &shm, "tmpfs"),
        "mount leaked"
    );

    let details = client
        .get_guest_details(ctx(), &GuestDetailsRequest::new())
        .await
        .unwrap();
    assert!(details.agent_details.unwrap().init_daemon);

    client
        .destroy_sandbox(ctx(), &DestroySandboxRequest::new())
        .await
        .unwrap();
    let status = wait_exit(&mut agent);
    // reboot(POWER_OFF) in a PID namespace kills its init with SIGINT.
    let powered_off = status.signal() == Some(libc::SIGINT) || status.code() == Some(128 + 2);
    assert!(powered_off, "{status:?}\n{}", agent.log());
    assert!(!hostname_file.exists(), "teardown ran before power off");
}

#[tokio::test(flavor = "current_thread")]
async fn storage_mounts_are_made_and_undone_in_a_mount_namespace() {
    if !can_unshare() {
        eprintln!("skipped: needs root and unshare");
        return;
    }
    let agent = AgentProcess::start_with(&["unshare", "--mount", "--uts", "--"], &["--system"]);
    let pid = agent.child.id();
    let (client, health) = agent.client().await;
    let shared = agent.dir.path().join("share");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("file"), "shared").unwrap();
    let req = CreateSandboxRequest {
        storages: vec![
            shm_storage(),
            Storage {
                driver: "bind".into(),
                source: "/share".into(),
                mount_point: "/run/kata-containers/shared/containers".into(),
                options: vec!["ro".into()],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    std::fs::rename(&shared, agent.guest("/share")).unwrap();
    client.create_sandbox(ctx(), &req).await.unwrap();
    let shm = agent.guest("/run/kata-containers/sandbox/shm");
    let bound = agent.guest("/run/kata-containers/shared/containers");
    let mounts = mounts_of(pid);
    assert!(has_mount(&mounts, &shm, "tmpfs"), "{mounts:?}");
    assert!(mounts
        .iter()
        .any(|(p, _)| *p == bound.display().to_string()));

    client
        .destroy_sandbox(ctx(), &DestroySandboxRequest::new())
        .await
        .unwrap();
    let mounts = mounts_of(pid);
    assert!(!has_mount(&mounts, &shm, "tmpfs"), "{mounts:?}");
    assert!(!mounts
        .iter()
        .any(|(p, _)| *p == bound.display().to_string()));
    assert!(
        !agent.guest("/run/kata-containers").exists(),
        "mount points removed"
    );
    assert_eq!(
        std::fs::read_to_string(agent.guest("/share/file")).unwrap(),
        "shared"
    );
    health.check(ctx(), &CheckRequest::new()).await.unwrap();
}
