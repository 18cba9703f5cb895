//! Containers in one sandbox through the agent on a Unix socket (root only, the agent
//! in fresh namespaces): the shared pid, ipc and uts namespaces, devices, shared
//! mounts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::code_of;
use common::ctx;
use common::guest::{can_run, Guest};
use hull_protocols::agent::*;
use hull_protocols::oci;
use hull_protocols::ttrpc::Code;

#[tokio::test(flavor = "current_thread")]
async fn containers_share_the_sandbox_pid_ipc_and_uts_namespaces() {
    if !can_run() {
        return;
    }
    let g = Guest::start(&["--system"]).await;
    g.create_sandbox("podname", true).await;

    // A POSIX message queue made through one container's mqueue mount ...
    let (code, out) = g
        .output(
            "maker",
            &["/bin/sh", "-c", "touch /dev/mqueue/hullq && hostname"],
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "podname\n"));
    g.run("sleeper", &["/bin/sleep", "1000"]).await;

    // ... is seen in another's, with the same hostname and the first one's processes.
    let (code, out) = g
        .output(
            "looker",
            &["/bin/sh", "-c", "hostname; ls /dev/mqueue; ps -o pid,args"],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["podname", "hullq"], "{out}");
    assert!(out.contains("sleep 1000"), "the sleeper is visible: {out}");
    let pid1 = lines.iter().find(|l| l.trim_start().starts_with("1 "));
    assert!(
        pid1.is_some_and(|l| l.contains("sandbox-pause")),
        "pid 1 is the pause process: {out}"
    );

    // The sandbox's pid namespace goes with it, and its processes with it.
    let destroy = DestroySandboxRequest::default();
    g.client.destroy_sandbox(ctx(), &destroy).await.unwrap();
    assert_eq!(g.wait("sleeper", "").await, 128 + libc::SIGKILL);
    for id in ["maker", "sleeper", "looker"] {
        g.remove(id).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sandbox_pidns_needs_a_sandbox_and_own_hostnames_stay_own() {
    if !can_run() {
        return;
    }
    let g = Guest::start(&["--system"]).await;
    let mut req = g.request("early", &["/bin/true"]);
    req.sandbox_pidns = true;
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(message.contains("sandbox_pidns"), "{message}");

    g.create_sandbox("pod2", false).await;
    let mut req = g.request("named", &["/bin/sh", "-c", "hostname; echo $$"]);
    let mut spec = req.OCI.take().unwrap();
    spec.Hostname = "mine".into();
    req.OCI = Some(spec).into();
    g.create_with(req).await;
    g.start_container("named").await;
    let out = g.read_text("named", false).await;
    assert_eq!(g.wait("named", "").await, 0);
    assert_eq!(out, "mine\n1\n", "own hostname, own pid namespace");
    g.remove("named").await;
}

/// A loop device over a small file, detached on drop.
struct Loop {
    dev: PathBuf,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    fn new() -> Option<Loop> {
        let file = tempfile::NamedTempFile::new().ok()?;
        let mut data = b"hello loop".to_vec();
        data.resize(1 << 20, 0);
        std::fs::write(file.path(), data).ok()?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .ok()?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !dev.is_empty()).then(|| Loop {
            dev: dev.into(),
            _file: file,
        })
    }

    fn numbers(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
        (libc::major(rdev) as u64, libc::minor(rdev) as u64)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn mknod(path: &Path, major: u64, minor: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("mknod")
        .arg(path)
        .args(["b", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A spec that has /dev/xdev with the host's numbers (250:99) and allows only that
/// device and the default ones (null, zero, full, random, urandom, tty).
fn with_host_device(mut spec: oci::Spec) -> oci::Spec {
    let mut linux = spec.Linux.take().unwrap();
    linux.Devices = vec![oci::LinuxDevice {
        Path: "/dev/xdev".into(),
        Type: "b".into(),
        Major: 250,
        Minor: 99,
        FileMode: 0o660,
        ..Default::default()
    }];
    let rule = |allow: bool, typ: &str, major: i64, minor: i64| oci::LinuxDeviceCgroup {
        Allow: allow,
        Type: typ.into(),
        Major: major,
        Minor: minor,
        Access: "rwm".into(),
        ..Default::default()
    };
    let mut rules = vec![rule(false, "a", -1, -1), rule(true, "b", 250, 99)];
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0)] {
        rules.push(rule(true, "c", major, minor));
    }
    linux.Resources = Some(oci::LinuxResources {
        Devices: rules,
        ..Default::default()
    })
    .into();
    spec.Linux = Some(linux).into();
    spec
}

fn device(typ: &str, vm_path: &str) -> Device {
    Device {
        type_: typ.into(),
        vm_path: vm_path.into(),
        container_path: "/dev/xdev".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_guest_device_gets_its_guest_numbers_in_the_container() {
    if !can_run() {
        return;
    }
    let Some(lo) = Loop::new() else {
        eprintln!("skipped: no loop device (losetup failed)");
        return;
    };
    let g = Guest::start(&["--system", "--hotplug-timeout", "1"]).await;
    let (major, minor) = lo.numbers();
    mknod(&g.agent().guest("/dev/hull-disk"), major, minor);

    let mut req = g.request(
        "disk",
        &[
            "/bin/sh",
            "-c",
            "stat -c %t:%T /dev/xdev && head -c 10 /dev/xdev",
        ],
    );
    req.OCI = Some(with_host_device(req.OCI.take().unwrap())).into();
    req.devices = vec![device("mmioblk", "/dev/hull-disk")];
    g.create_with(req).await;
    g.start_container("disk").await;
    let out = g.read_text("disk", false).await;
    let err = g.read_text("disk", true).await;
    assert_eq!(g.wait("disk", "").await, 0, "{out} {err}");
    assert_eq!(out, format!("{major:x}:{minor:x}\nhello loop"));
    g.remove("disk").await;

    // A device that never appears fails after the hot-plug timeout, naming it.
    let mut req = g.request("late", &["/bin/true"]);
    req.OCI = Some(with_host_device(req.OCI.take().unwrap())).into();
    req.devices = vec![device("blk", "/dev/hull-missing")];
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::DEADLINE_EXCEEDED, "{message}");
    assert!(
        message.contains("/dev/hull-missing did not appear"),
        "{message}"
    );

    // So does a PCI path with nothing in its slot.
    req.devices = vec![device("blk", "02/1f")];
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::DEADLINE_EXCEEDED, "{message}");
    assert!(message.contains("pci path 02/1f"), "{message}");

    for (typ, want) in [
        ("floppy", Code::INVALID_ARGUMENT),
        ("vfio-pci", Code::UNIMPLEMENTED),
    ] {
        req.devices = vec![device(typ, "/dev/hull-disk")];
        let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
        assert_eq!(code, want, "{message}");
        assert!(message.contains(typ), "{message}");
    }
}

fn shared(src: &str, dst: &str) -> SharedMount {
    SharedMount {
        name: "share".into(),
        src_ctr: src.into(),
        src_path: "/shared".into(),
        dst_ctr: dst.into(),
        dst_path: "/seen".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_shared_mount_shows_one_containers_directory_to_another() {
    if !can_run() {
        return;
    }
    let g = Guest::start(&["--system"]).await;
    let mounts = vec![shared("src", "dst")];

    let mut req = g.request("src", &["/bin/sh", "-c", "echo from-src > /shared/f"]);
    req.shared_mounts = mounts.clone();
    g.create_with(req).await;
    g.start_container("src").await;
    assert_eq!(g.wait("src", "").await, 0);

    let mut req = g.request("dst", &["/bin/cat", "/seen/f"]);
    req.shared_mounts = mounts;
    g.create_with(req).await;
    g.start_container("dst").await;
    assert_eq!(g.read_text("dst", false).await, "from-src\n");
    assert_eq!(g.wait("dst", "").await, 0);

    let mut req = g.request("orphan", &["/bin/true"]);
    req.shared_mounts = vec![shared("nobody", "orphan")];
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::NOT_FOUND);
    assert!(message.contains("\"nobody\""), "{message}");

    g.remove("dst").await;
    g.remove("src").await;
    let dir = g
        .agent()
        .guest("/run/kata-containers/sandbox/shared-mounts/share");
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", g.agent_pid())).unwrap();
    assert!(!mountinfo.contains("shared-mounts"), "{mountinfo}");
    assert!(!dir.exists(), "the shared directory goes with its source");
}
